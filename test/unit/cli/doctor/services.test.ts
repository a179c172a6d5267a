/** hostPorts against kube-proxy: Service capture, jump order, flavour split. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { parseNat } from '../../../../src/cli/iptables.js';
import { REFERENCE_SAVE } from '../fixtures.js';
import { clusterIP, facts, ids, ours } from './fixtures.js';

describe('doctor: services', () => {
  it('ipvs ClusterIP equal to a hostPort is captured unless serviceCIDRs excludes it; a hostIP elsewhere is safe', () => {
    expect(ids(facts({ ipsetServices: [clusterIP], ipvsAddresses: ['10.96.0.10'] }, { rows: [ours()] }))).toEqual(['service-port-captured']);
    // afterServices alone does not help under ipvs
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [ours()], ourPriority: -90 }))).toEqual(['service-port-captured']);
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [ours()], ourPriority: -90, serviceCidrs: ['10.96.0.0/12'] }))).toEqual([]);
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [ours({ hostIP: '192.0.2.1' })] }))).toEqual([]);
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [ours({ protocol: 'udp' })] }))).toEqual([]);
    // an iptables CNI-DN chain that RETURNs the Service CIDR first (our iptables backend's serviceCIDRs)
    const dn = ours({ origin: 'reference', source: { kind: 'iptables', flavour: 'nft' }, backend: 'iptables', chain: 'CNI-DN-x' });
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [dn] }))).toEqual(['service-port-captured']);
    expect(ids(facts({ ipsetServices: [clusterIP] }, { rows: [{ ...dn, excludes: ['10.96.0.0/12'] }] }))).toEqual([]);
  });

  it('NodePort equal to a hostPort: captured at priority -100, safe with afterServices', () => {
    const np = { kind: 'nodePort' as const, protocol: 'tcp', port: 3306, mode: 'nftables' as const, source: 'nft ip kube-proxy', family: 4 as const };
    const chains = [{ family: 'ip', table: 'kube-proxy', name: 'nat-prerouting', hook: 'prerouting', prio: -100 }];
    expect(ids(facts({}, { rows: [ours()], services: [np], natChains: chains }))).toEqual(['service-port-captured']);
    expect(ids(facts({}, { rows: [ours()], services: [np], natChains: chains, ourPriority: -90 }))).toEqual([]);
    // a non-local ClusterIP (iptables mode, no kube-ipvs0) is never hostPort-DNATed
    const ipt = { ...clusterIP, mode: 'iptables' as const, source: 'iptables-nft' };
    expect(ids(facts({}, { rows: [ours()], services: [ipt] }))).toEqual([]);
  });

  it('KUBE-SERVICES after CNI-HOSTPORT-DNAT, and the reference hostPort on a NodePort', () => {
    const text = REFERENCE_SAVE.replace('--dport 30080', '--dport 8843');
    const f = facts({ iptables: [{ flavour: 'nft', family: 4, nat: parseNat(text) }] });
    expect(ids(f)).toEqual(expect.arrayContaining(['kube-services-after-hostports', 'service-port-captured']));
    const order = diagnose(f).find((x) => x.id === 'kube-services-after-hostports')!;
    expect(order.message).toMatch(/iptables-nft nat PREROUTING, the jump to CNI-HOSTPORT-DNAT \(rule 1\) comes before KUBE-SERVICES \(rule 2\)/);
    // kube-proxy's own jump, as read, deleted and inserted first
    expect(order.commands).toEqual([
      "iptables-nft -t nat -D PREROUTING -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES",
      "iptables-nft -t nat -I PREROUTING 1 -m comment --comment 'kubernetes service portals' -j KUBE-SERVICES",
    ]);
  });

  it('kube-proxy in legacy, hostPorts in nft', () => {
    const kube = parseNat('*nat\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n');
    const hp = parseNat(REFERENCE_SAVE.replace(/^.*KUBE.*\n/gm, ''));
    const f = facts({ iptables: [{ flavour: 'legacy', family: 4, nat: kube }, { flavour: 'nft', family: 4, nat: hp }] });
    expect(ids(f)).toContain('iptables-flavour-split');
    f.iptables[0]!.flavour = 'nft';
    f.iptables[1]!.flavour = 'nft';
    expect(ids(f)).not.toContain('iptables-flavour-split');
  });
});
