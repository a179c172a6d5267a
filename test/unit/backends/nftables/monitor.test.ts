import { describe, expect, it } from 'vitest';
import { isDamageEvent } from '../../../../src/backends/nftables/monitor.js';

describe('nft monitor filter', () => {
  it('reacts to removals of our table, chains, rules, and the iptables-nft chains we use', () => {
    for (const l of [
      'delete table inet cni_portmap',
      'delete chain inet cni_portmap prerouting',
      'delete rule inet cni_portmap hostports handle 7',
      'delete map inet cni_portmap ready',
      'delete rule ip nat PREROUTING handle 3',
      'delete chain ip nat CNI-HOSTPORT-DNAT',
      'delete rule ip6 nat CNI-DN-1234 handle 9',
      'delete table ip nat',
      'flush ruleset',
    ]) expect(isDamageEvent(l), l).toBe(true);
  });

  it("ignores what every CNI call does, additions, comments and kube-proxy's churn", () => {
    for (const l of [
      'delete element inet cni_portmap hostports4_addr { tcp . 8080 }',
      'add element inet cni_portmap owners { 1 . 2 }',
      'add table inet cni_portmap',
      '# new generation 10 by process 19554 (nft)',
      'delete rule ip nat KUBE-SVC-XYZ handle 12',
      'delete chain ip nat KUBE-SEP-ABC',
      'delete rule inet kube-proxy services handle 3',
    ]) expect(isDamageEvent(l), l).toBe(false);
  });
});
