/** Forwarding sysctls, route_localnet and tools. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { facts, ids, ours } from './fixtures.js';

describe('doctor: node', () => {
  it('sysctls and tools', () => {
    expect(ids(facts({ ipForward: '0' }, { rows: [ours()] }))).toEqual(['ip-forward-off']);
    expect(ids(facts({ ipForward: '0' }))).toEqual([]);
    expect(ids(facts({ ip6Forward: '0' }, { rows: [ours({ family: 6, podIP: 'fd00::5' })] }))).toEqual(['ip6-forward-off']);
    const rl = diagnose(facts({ routeLocalnet: [{ podIP: '10.244.0.5', dev: 'cni0', on: false }] }, { rows: [ours()] }));
    expect(rl.map((x) => x.id)).toEqual(['route-localnet-off']);
    expect(rl[0]!.message).toContain('127.0.0.1:tcp/3306');
    expect(ids(facts({ tools: { nft: false, iptables: false, conntrack: false, ss: true, ip: true } }))).toEqual(['tool-missing-nft', 'tool-missing-iptables', 'tool-missing-conntrack']);
  });
});
