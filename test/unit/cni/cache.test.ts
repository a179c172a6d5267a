import { describe, expect, it } from 'vitest';
import { parseCacheEntry, portmapConfigOf, portmapInList } from '../../../src/cni/cache.js';
import { parseConfig } from '../../../src/portmap/config.js';

export const conflist = {
  cniVersion: '1.0.0',
  name: 'podnet',
  plugins: [
    { type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local' } },
    { type: 'portmap', capabilities: { portMappings: true }, snat: false },
  ],
};

/** A cache file as libcni 1.1 writes it (containerd's capitalised mapping keys). */
export function cacheText(over: Record<string, unknown> = {}, list: unknown = conflist): string {
  return JSON.stringify({
    kind: 'cniCacheV1',
    containerId: 'c1',
    config: Buffer.from(JSON.stringify(list)).toString('base64'),
    ifName: 'eth0',
    networkName: 'podnet',
    cniArgs: [['K8S_POD_NAME', 'web']],
    capabilityArgs: { portMappings: [{ HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' }] },
    result: {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'cni0', mac: '00:11:22:33:44:55' }, { name: 'eth0', mac: '00:11:22:33:44:66', sandbox: '/var/run/netns/cni-1' }],
      ips: [{ address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 1 }],
    },
    ...over,
  });
}

describe('libcni cache entries', () => {
  it('reads a cniCacheV1 file: identity, netns from the sandbox, mappings, the decoded network list', () => {
    const e = parseCacheEntry(cacheText());
    expect(e).toMatchObject({ containerId: 'c1', ifName: 'eth0', networkName: 'podnet', netns: '/var/run/netns/cni-1', cniArgs: [['K8S_POD_NAME', 'web']] });
    expect(e.config).toEqual(conflist);
    expect(portmapInList(e.config)).toMatchObject({ capability: true, cniVersion: '1.0.0', plugin: { type: 'portmap' } });
    // newer libcni also stores netns; it wins over the sandbox
    expect(parseCacheEntry(cacheText({ netns: '/proc/42/ns/net' })).netns).toBe('/proc/42/ns/net');
  });

  it('gives the configuration portmap received, which the plugin schema accepts', () => {
    const c = parseConfig(portmapConfigOf(parseCacheEntry(cacheText()))!);
    expect(c).toMatchObject({ name: 'podnet', cniVersion: '1.0.0', snat: false, portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] });
    expect(c.prevResult).toMatchObject({ ips: [{ address: '10.244.0.5/24' }] });
  });

  it('tells a list without portmap or without the capability; refuses other files', () => {
    const noPortmap = { ...conflist, plugins: [conflist.plugins[0]] };
    expect(portmapInList(parseCacheEntry(cacheText({}, noPortmap)).config).plugin).toBeUndefined();
    expect(portmapConfigOf(parseCacheEntry(cacheText({}, noPortmap)))).toBeUndefined();
    const noCap = { ...conflist, plugins: [conflist.plugins[0], { type: 'portmap' }] };
    expect(portmapInList(parseCacheEntry(cacheText({}, noCap)).config).capability).toBe(false);
    expect(() => parseCacheEntry('{')).toThrow(/not JSON/);
    expect(() => parseCacheEntry(cacheText({ kind: 'other' }))).toThrow(/kind/);
    expect(() => parseCacheEntry(JSON.stringify({ kind: 'cniCacheV1' }))).toThrow(/not a libcni cache entry/);
    expect(parseCacheEntry(cacheText({ config: Buffer.from('nope').toString('base64') })).configError).toMatch(/not JSON/);
  });
});
