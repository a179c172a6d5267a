/** kube-proxy's iptables and ipvs mode Services in iptables-save text, and the order of its jump. */
import { describe, expect, it } from 'vitest';
import { jumpIndex, parseNat } from '../../../src/cli/iptables.js';
import { isIpvsMode, kubeServices } from '../../../src/cli/kube-proxy.js';
import { REFERENCE_SAVE } from './fixtures.js';

describe('kube-proxy in iptables-save', () => {
  it('reads kube-proxy Services and the jump order', () => {
    const nat = parseNat(REFERENCE_SAVE);
    expect(kubeServices(nat, 'nft', 4)).toEqual([
      { kind: 'clusterIP', address: '10.96.0.10', protocol: 'tcp', port: 53, mode: 'iptables', source: 'iptables-nft', name: 'kube-system/kube-dns:dns-tcp cluster IP', family: 4 },
      { kind: 'nodePort', protocol: 'tcp', port: 30080, mode: 'iptables', source: 'iptables-nft', name: 'default/web:http', family: 4 },
    ]);
    expect(jumpIndex(nat, 'PREROUTING', 'CNI-HOSTPORT-DNAT')).toBe(0);
    expect(jumpIndex(nat, 'PREROUTING', 'KUBE-SERVICES')).toBe(1);
    expect(jumpIndex(nat, 'OUTPUT', 'KUBE-SERVICES')).toBe(0);
    expect(isIpvsMode(nat)).toBe(false);
    const ipvs = parseNat('*nat\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n');
    expect(isIpvsMode(ipvs)).toBe(true);
  });

  it('ignores kube-proxy chains nothing jumps to (leftovers)', () => {
    const text = REFERENCE_SAVE.replace(/^-A (PREROUTING|OUTPUT) .*KUBE-SERVICES\n/gm, '');
    expect(kubeServices(parseNat(text), 'nft')).toEqual([]);
  });
});
