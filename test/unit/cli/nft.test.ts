/** Reading nft -j list ruleset: the reference's cni_hostport rules, kube-proxy's maps, NAT chain priorities. */
import { describe, expect, it } from 'vitest';
import { parseRuleset } from '../../../src/cli/nft.js';
import { sourceLabel } from '../../../src/cli/rows.js';
import { RULESET_JSON } from './fixtures.js';

describe('nft ruleset parsing', () => {
  it('reads the reference cni_hostport rules, kube-proxy maps and NAT chain priorities', () => {
    const rs = parseRuleset(RULESET_JSON);
    expect(rs.ours).toBeUndefined();
    expect(rs.rows.map((r) => `${r.protocol} ${r.hostIP ?? '*'}:${r.hostPort} -> ${r.podIP}:${r.containerPort} ${r.containerID} ${r.origin} ${sourceLabel(r.source)} localhost=${r.localhost}`)).toEqual([
      'tcp *:8080 -> 10.0.0.2:80 ctr-one reference nft ip cni_hostport localhost=true',
      'udp 192.168.0.2:5353 -> 10.0.0.3:53 ctr-two reference nft ip cni_hostport localhost=false',
    ]);
    expect(rs.services).toEqual([
      { kind: 'clusterIP', address: '10.96.0.10', protocol: 'tcp', port: 53, mode: 'nftables', source: 'nft ip kube-proxy', family: 4, name: 'kube-system/kube-dns:dns-tcp' },
      { kind: 'nodePort', protocol: 'tcp', port: 30080, mode: 'nftables', source: 'nft ip kube-proxy', family: 4 },
    ]);
    expect(rs.natChains.map((c) => `${c.table}/${c.name}@${c.prio}`)).toEqual(['cni_hostport/prerouting@-100', 'kube-proxy/nat-prerouting@-100']);
    expect(rs.tables).toEqual(['ip cni_hostport', 'ip kube-proxy']);
  });

  it('rejects output that is not an nft JSON listing', () => {
    expect(() => parseRuleset('{"foo": 1}')).toThrow();
  });
});
