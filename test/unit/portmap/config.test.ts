import { describe, expect, it } from 'vitest';
import { MAX_PORT_MAPPINGS, canonicalKeys, logSettingsOf, parseConfig } from '../../../src/portmap/config.js';
import { CniError } from '../../../src/cni/errors.js';

const base = { cniVersion: '1.0.0', name: 'net', type: 'portmap' };
const withMappings = (portMappings: unknown[], extra: Record<string, unknown> = {}) => ({ ...base, ...extra, runtimeConfig: { portMappings } });

function error(raw: Record<string, unknown>): CniError {
  try {
    parseConfig(raw);
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error('expected a CniError');
}

describe('parseConfig', () => {
  it('applies the reference defaults and ours', () => {
    const c = parseConfig(base);
    expect(c).toMatchObject({ snat: true, masqAll: false, markMasqBit: 13, afterServices: false, serviceCIDRs: [], portMappings: [] });
    expect(c.backend).toBeUndefined();
    expect(parseConfig({ ...base, snat: null }).snat).toBe(true);
  });

  it('accepts containerd key casing (HostPort, ContainerPort, Protocol, HostIP) and lower-cases protocols', () => {
    const c = parseConfig(withMappings([{ HostPort: 8080, ContainerPort: 80, Protocol: 'TCP', HostIP: '' }, { hostPort: 53, containerPort: 53, protocol: 'Udp', hostIP: '2001:DB8::1' }]));
    expect(c.portMappings).toEqual([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 53, containerPort: 53, protocol: 'udp', hostIP: '2001:db8::1' },
    ]);
  });

  it('matches top-level keys case-insensitively too, an exact key winning', () => {
    expect(canonicalKeys({ SNAT: false, snat: true }, ['snat'])).toEqual({ snat: true });
    expect(parseConfig({ ...base, SNAT: false, RuntimeConfig: { PortMappings: [{ hostport: 1, containerport: 2 }] } })).toMatchObject({
      snat: false,
      portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }],
    });
  });

  it.each([
    [{ hostPort: 0, containerPort: 80 }, 'runtimeConfig.portMappings[0].hostPort: 0', 'Invalid host port number'],
    [{ hostPort: 65536, containerPort: 80 }, 'runtimeConfig.portMappings[0].hostPort: 65536', 'Invalid host port number'],
    [{ hostPort: -1, containerPort: 80 }, 'hostPort: -1', 'Invalid host port number'],
    [{ hostPort: 80.5, containerPort: 80 }, 'hostPort: 80.5', 'Invalid host port number'],
    [{ hostPort: '80', containerPort: 80 }, 'hostPort: "80"', 'Invalid host port number'],
    [{ hostPort: 80, containerPort: 0 }, 'containerPort: 0', 'Invalid container port number'],
    [{ hostPort: 80, containerPort: 80, protocol: 'icmp' }, 'protocol: "icmp"', 'tcp, udp, sctp'],
    [{ hostPort: 80, containerPort: 80, hostIP: '1.2.3.4 drop' }, 'hostIP: "1.2.3.4 drop"', 'IPv4 or IPv6 address'],
    [{ hostPort: 80, containerPort: 80, hostIP: 'localhost' }, 'hostIP: "localhost"', 'IPv4 or IPv6 address'],
  ])('rejects mapping %j naming the field and value (code 7)', (m, msg, details) => {
    const e = error(withMappings([m]));
    expect(e.code).toBe(7);
    expect(e.message).toContain(msg);
    expect(e.details).toContain(details);
  });

  it('accepts 65,535 mappings and rejects more, before looking at any of them', () => {
    const all = Array.from({ length: MAX_PORT_MAPPINGS }, (_, i) => ({ hostPort: i + 1, containerPort: i + 1, protocol: 'udp' }));
    expect(parseConfig(withMappings(all)).portMappings).toHaveLength(65_535);
    // One more, even an invalid one, is refused for the count (the list is not parsed first).
    const e = error(withMappings([...all, { hostPort: 'bogus' }]));
    expect(e.code).toBe(7);
    expect(e.message).toBe('invalid value for runtimeConfig.portMappings: 65536 mappings');
    expect(e.details).toBe('at most 65535 port mappings');
  });

  it('validates markMasqBit and externalSetMarkChain like the reference', () => {
    expect(error({ ...base, markMasqBit: 13, externalSetMarkChain: 'KUBE-MARK-MASQ' }).message).toBe('Cannot specify externalSetMarkChain and markMasqBit');
    expect(error({ ...base, markMasqBit: 32 }).details).toBe('MasqMarkBit must be between 0 and 31');
    expect(parseConfig({ ...base, markMasqBit: 5 }).markMasqBit).toBe(5);
  });

  it('rejects options of the other backend with the reference message', () => {
    expect(error({ ...base, backend: 'nftables', externalSetMarkChain: 'X', conditionsV4: ['-d', '1.2.3.4'], conditionsV6: ['!', '-d', '::1'] }).message).toBe(
      'nftables backend was requested but configuration contains iptables-specific options [externalSetMarkChain conditionsV4 conditionsV6]',
    );
    expect(error({ ...base, backend: 'iptables', conditionsV4: ['ip', 'daddr', '!=', '192.0.2.0/24'], conditionsV6: ['ip6', 'daddr', '::1'] }).message).toBe(
      'iptables backend was requested but configuration contains nftables-specific options [conditionsV4 conditionsV6]',
    );
    expect(error({ ...base, backend: 'pf' }).message).toBe('unrecognized backend "pf"');
  });

  it('rejects condition tokens that could carry rule syntax', () => {
    for (const bad of ['a b', 'x;drop', '"q"', '#c', 'a\nb']) {
      expect(error({ ...base, conditionsV4: ['ip', bad] }).code).toBe(7);
    }
  });

  it('parses serviceCIDRs to networks and rejects non-CIDRs', () => {
    expect(parseConfig({ ...base, serviceCIDRs: ['10.96.0.1/12', 'fd00:96::/108'] }).serviceCIDRs.map((c) => `${c.network}/${c.prefixLength}`)).toEqual([
      '10.96.0.0/12',
      'fd00:96::/108',
    ]);
    expect(error({ ...base, serviceCIDRs: ['10.96.0.0'] }).message).toContain('serviceCIDRs[0]');
  });

  it('reads GC attachments from cni.dev/valid-attachments or cni.dev/attachments', () => {
    const a = [{ containerID: 'c1', ifname: 'eth0' }];
    expect(parseConfig({ ...base, 'cni.dev/valid-attachments': a }).validAttachments).toEqual(a);
    expect(parseConfig({ ...base, 'cni.dev/attachments': a }).validAttachments).toEqual(a);
    expect(error({ ...base, 'cni.dev/valid-attachments': [{ containerID: 1 }] }).code).toBe(7);
  });

  it('rejects wrong types with the field named', () => {
    const e = error({ ...base, snat: 'false' });
    expect(e.message).toBe('invalid value for snat: "false"');
  });
});

describe('dataDir (attachment records, issue #13)', () => {
  it('takes an absolute path (without a trailing slash) and refuses relative or dotted ones', () => {
    expect(parseConfig(base).dataDir).toBeUndefined();
    expect(parseConfig({ ...base, dataDir: '/var/lib/cni/portmap-test/' }).dataDir).toBe('/var/lib/cni/portmap-test');
    for (const bad of ['relative/dir', '/var/lib/../etc', '/var/./lib', '/a\nb', 42]) {
      expect(error({ ...base, dataDir: bad }).message, String(bad)).toMatch(/invalid value for dataDir/);
    }
  });
});

describe('logFile, logLevel, logFormat, logMaxSize (issue #17)', () => {
  it('defaults to none (stderr, info, text, 10 MiB in host/log.ts); reads each, in any letter case', () => {
    expect(parseConfig(base).log).toEqual({});
    const c = parseConfig({ ...base, logFile: '/var/log/portmap.log', LogLevel: 'DEBUG', logFormat: 'json', logMaxSize: 1048576 });
    expect(c.log).toEqual({ file: '/var/log/portmap.log', level: 'debug', format: 'json', maxSize: 1048576 });
    expect(parseConfig({ ...base, logFile: '', logLevel: null, logFormat: null, logMaxSize: null }).log).toEqual({});
  });

  it('refuses invalid values with code 7, naming the field and the value', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ logFile: 'portmap.log' }, 'invalid value for logFile: "portmap.log"', /absolute file path/],
      [{ logFile: '/var/log/../etc/passwd' }, 'invalid value for logFile: "/var/log/../etc/passwd"', /without "\." or "\.\." parts/],
      [{ logFile: '/var/log/' }, 'invalid value for logFile: "/var/log/"', /file path/],
      [{ logFile: 7 }, 'invalid value for logFile: 7', /must be a file path/],
      [{ logLevel: 'loud' }, 'invalid value for logLevel: "loud"', /one of error, warn, info, debug/],
      [{ logFormat: 'xml' }, 'invalid value for logFormat: "xml"', /one of text, json/],
      [{ logMaxSize: 1000 }, 'invalid value for logMaxSize: 1000', /at least 65536/],
      [{ logMaxSize: 1.5e6 + 0.5 }, 'invalid value for logMaxSize: 1500000.5', /whole number of bytes/],
      [{ logMaxSize: '10M' }, 'invalid value for logMaxSize: "10M"', /whole number of bytes/],
    ];
    for (const [extra, msg, details] of cases) {
      const e = error({ ...base, ...extra });
      expect(e.code, msg).toBe(7);
      expect(e.message).toBe(msg);
      expect(e.details).toMatch(details);
    }
  });

  it('logSettingsOf reads the valid logging keys of a configuration that fails elsewhere', () => {
    const raw = { ...base, markMasqBit: 99, logFile: '/var/log/p.log', logLevel: 'loud', logformat: 'JSON', logMaxSize: 65536 };
    expect(error(raw).code).toBe(7);
    expect(logSettingsOf(raw)).toEqual({ file: '/var/log/p.log', format: 'json', maxSize: 65536 });
  });
});
