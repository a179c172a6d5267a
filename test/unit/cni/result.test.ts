import { describe, expect, it } from 'vitest';
import { containerAddresses, convertResult, parsePrevResult } from '../../../src/cni/result.js';
import { SUPPORTED_VERSIONS, type CniVersion } from '../../../src/cni/versions.js';
import { CniError } from '../../../src/cni/errors.js';

const v1 = {
  cniVersion: '1.0.0',
  interfaces: [
    { name: 'cni0', mac: 'aa:aa:aa:aa:aa:aa' },
    { name: 'veth1', mac: 'bb:bb:bb:bb:bb:bb' },
    { name: 'eth0', mac: 'cc:cc:cc:cc:cc:cc', sandbox: '/var/run/netns/p1' },
  ],
  ips: [
    { address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 2 },
    { address: 'fd00:244::5/64', gateway: 'fd00:244::1', interface: 2 },
  ],
  routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
  dns: { nameservers: ['10.96.0.10'] },
};

const v04 = {
  cniVersion: '0.4.0',
  interfaces: v1.interfaces,
  ips: [
    { version: '4', address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 2 },
    { version: '6', address: 'fd00:244::5/64', gateway: 'fd00:244::1', interface: 2 },
  ],
  routes: v1.routes,
  dns: { nameservers: ['10.96.0.10'] },
};

const v02 = {
  cniVersion: '0.2.0',
  ip4: { ip: '10.244.0.5/24', gateway: '10.244.0.1', routes: [{ dst: '0.0.0.0/0' }] },
  ip6: { ip: 'fd00:244::5/64', gateway: 'fd00:244::1', routes: [{ dst: '::/0' }] },
  dns: { nameservers: ['10.96.0.10'] },
};

describe('prevResult conversion across every supported version', () => {
  it.each(SUPPORTED_VERSIONS.map((v) => [v]))('a 1.0.0 result printed for config %s', (to) => {
    const out = convertResult(parsePrevResult(v1, '1.0.0'), to as CniVersion);
    expect(out.cniVersion).toBe(to);
    if (to === '1.0.0' || to === '1.1.0') {
      expect(out).toEqual({ ...v1, cniVersion: to });
    } else if (to === '0.1.0' || to === '0.2.0') {
      expect(out).toEqual({ ...v02, cniVersion: to });
    } else {
      expect(out).toEqual({ ...v04, cniVersion: to });
    }
  });

  it.each(SUPPORTED_VERSIONS.map((v) => [v]))('a 0.4.0 result printed for config %s', (to) => {
    const out = convertResult(parsePrevResult(v04, '0.4.0'), to as CniVersion);
    expect(out.cniVersion).toBe(to);
    if (to.startsWith('1.')) expect(out).toEqual({ ...v1, cniVersion: to });
    else if (to === '0.1.0' || to === '0.2.0') expect(out).toEqual({ ...v02, cniVersion: to });
    else expect(out).toEqual({ ...v04, cniVersion: to });
  });

  it.each(SUPPORTED_VERSIONS.map((v) => [v]))('a 0.2.0 result printed for config %s', (to) => {
    const out = convertResult(parsePrevResult(v02, '0.2.0'), to as CniVersion);
    expect(out.cniVersion).toBe(to);
    const ips = [
      { address: '10.244.0.5/24', gateway: '10.244.0.1' },
      { address: 'fd00:244::5/64', gateway: 'fd00:244::1' },
    ];
    if (to.startsWith('1.')) expect(out).toEqual({ cniVersion: to, ips, routes: v1.routes, dns: v1.dns });
    else if (to === '0.1.0' || to === '0.2.0') expect(out).toEqual({ ...v02, cniVersion: to });
    else expect(out).toEqual({ cniVersion: to, ips: ips.map((ip, i) => ({ version: i === 0 ? '4' : '6', ...ip })), routes: v1.routes, dns: v1.dns });
  });

  it('prints a same-family prevResult unchanged, unknown keys included', () => {
    const prev = { ...v1, cniVersion: '1.1.0', custom: { kept: true } };
    expect(convertResult(parsePrevResult(prev, '1.1.0'), '1.1.0')).toEqual(prev);
  });

  it('takes the config version when the prevResult has none', () => {
    const { cniVersion: _v, ...noVersion } = v04;
    expect(parsePrevResult(noVersion, '0.4.0').version).toBe('0.4.0');
  });

  it('0.3.x and 0.4.0 carry dns even when empty, 1.x drops an empty dns', () => {
    const bare = { cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] };
    expect(convertResult(parsePrevResult(bare, '1.0.0'), '0.3.1')).toEqual({ cniVersion: '0.3.1', ips: [{ version: '4', address: '10.0.0.2/24' }], dns: {} });
    const withEmptyDns = { cniVersion: '0.4.0', ips: [{ version: '4', address: '10.0.0.2/24' }], dns: {} };
    expect(convertResult(parsePrevResult(withEmptyDns, '0.4.0'), '1.0.0')).toEqual({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.2/24' }] });
  });

  it.each([
    [{ ips: [{ address: '10.0.0.300/24' }] }, 'prevResult.ips.0.address'],
    [{ ips: 'x' }, 'prevResult.ips'],
    [{ cniVersion: '9.9.9' }, 'unsupported prevResult cniVersion'],
    [[], 'must be a JSON object'],
  ])('rejects a malformed prevResult %j with code 7', (bad, where) => {
    try {
      parsePrevResult(bad, '1.0.0');
      throw new Error('no error');
    } catch (e) {
      expect((e as CniError).code).toBe(7);
      expect((e as CniError).message).toBe('could not parse prevResult');
      expect((e as CniError).details).toContain(where);
    }
  });
});

describe('containerAddresses', () => {
  it('takes the first IPv4 and IPv6 on the sandbox interface named by CNI_IFNAME', () => {
    const r = parsePrevResult(
      {
        cniVersion: '1.0.0',
        interfaces: [{ name: 'host' }, { name: 'eth0', sandbox: '/x' }, { name: 'net1', sandbox: '/x' }],
        ips: [
          { address: '10.0.0.1/24', interface: 0 },
          { address: '10.0.1.9/24', interface: 2 },
          { address: '10.0.0.2/24', interface: 1 },
          { address: '10.0.0.3/24', interface: 1 },
          { address: '2001:db8:1::2/64', interface: 1 },
        ],
      },
      '1.0.0',
    ).result;
    const a = containerAddresses(r, 'eth0');
    expect(a[4]).toMatchObject({ address: '10.0.0.2', prefixLength: 24, network: '10.0.0.0' });
    expect(a[6]).toMatchObject({ address: '2001:db8:1::2', prefixLength: 64, network: '2001:db8:1::' });
  });

  it('accepts addresses without an interface index or with an index out of range', () => {
    const r = parsePrevResult({ cniVersion: '1.0.0', ips: [{ address: '10.0.0.7/16', interface: 5 }, { address: 'fd00::7/64' }] }, '1.0.0').result;
    const a = containerAddresses(r, 'eth0');
    expect(a[4]?.address).toBe('10.0.0.7');
    expect(a[6]?.address).toBe('fd00::7');
  });

  it('skips an interface without a sandbox', () => {
    const r = parsePrevResult({ cniVersion: '1.0.0', interfaces: [{ name: 'eth0' }], ips: [{ address: '10.0.0.7/16', interface: 0 }] }, '1.0.0').result;
    expect(containerAddresses(r, 'eth0')).toEqual({});
  });
});
