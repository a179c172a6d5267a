/** Two owners for one host port: which one wins. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { parseNat } from '../../../../src/cli/iptables.js';
import { REFERENCE_SAVE } from '../fixtures.js';
import { facts, ours } from './fixtures.js';

describe('doctor: owners', () => {
  it('duplicate owners in one iptables table: the first CNI-HOSTPORT-DNAT jump wins', () => {
    const f = diagnose(facts({ iptables: [{ flavour: 'nft', family: 4, nat: parseNat(REFERENCE_SAVE) }] }));
    const dup = f.filter((x) => x.id === 'duplicate-hostport');
    expect(dup).toHaveLength(1);
    expect(dup[0]!.message).toMatch(/^Host port tcp\/8843 has 2 owners\. 10\.88\.0\.4:443 \(podman\/2d2b3521aa217\) \[reference plugin, iptables-nft CNI-DN-b6c5fb6c593e895d843cb\] receives the traffic/);
    // Each owner's entries go with whole commands: its jumps deleted by their exact rule, then its chain.
    expect(dup[0]!.commands).toEqual(expect.arrayContaining([
      `iptables-nft -t nat -D CNI-HOSTPORT-DNAT -p udp -m comment --comment 'dnat name: "mynet" id: "container-1"' -m multiport --dports 5353 -j CNI-DN-4b2fe54a72f0cde89f206`,
      `iptables-nft -t nat -D CNI-HOSTPORT-DNAT -p tcp -m comment --comment 'dnat name: "mynet" id: "container-1"' -m multiport --dports 8843,9000:9001 -j CNI-DN-4b2fe54a72f0cde89f206`,
      'iptables-nft -t nat -F CNI-DN-4b2fe54a72f0cde89f206',
      'iptables-nft -t nat -X CNI-DN-4b2fe54a72f0cde89f206',
      'iptables-nft -t nat -X CNI-DN-b6c5fb6c593e895d843cb',
    ]));
    expect(dup[0]!.fix).not.toMatch(/iptables|nft /);
  });

  it('our own forward is removed by its two map elements, quoted for the shell', () => {
    const ref = ours({ origin: 'reference', source: { kind: 'iptables', flavour: 'nft' }, backend: 'iptables', containerID: 'old', podIP: '10.244.0.9', chain: 'CNI-DN-x' });
    const dup = diagnose(facts({}, { rows: [ours({ hostIP: '192.0.2.1' }), { ...ref, hostIP: '192.0.2.1' }] })).find((x) => x.id === 'duplicate-hostport')!;
    expect(dup.commands).toEqual(expect.arrayContaining([
      "nft delete element inet cni_portmap hostipports4_addr '{ 192.0.2.1 . tcp . 3306 }'",
      "nft delete element inet cni_portmap hostipports4_port '{ 192.0.2.1 . tcp . 3306 }'",
    ]));
  });

  it('duplicate owners across tables: the lower priority wins, equal priorities are undefined', () => {
    const ref = ours({ origin: 'reference', source: { kind: 'iptables', flavour: 'nft' }, backend: 'iptables', containerID: 'old', podIP: '10.244.0.9', chain: 'CNI-DN-x' });
    expect(diagnose(facts({}, { rows: [ours(), ref], ourPriority: -100 }))[0]!.message).toMatch(/different tables at the same NAT priority \(-100\)/);
    // at -90 ours runs after iptables' -100: the reference chain wins
    const iptRows = facts({}, { rows: [ours()], ourPriority: -90 });
    const nat = parseNat('*nat\n-A PREROUTING -j CNI-HOSTPORT-DNAT\n-A CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"n\\" id: \\"old\\"" -m multiport --dports 3306 -j CNI-DN-x\n-A CNI-DN-x -p tcp -m tcp --dport 3306 -j DNAT --to-destination 10.244.0.9:3306\nCOMMIT\n');
    iptRows.iptables = [{ flavour: 'nft', family: 4, nat }];
    expect(diagnose(iptRows)[0]!.message).toMatch(/10\.244\.0\.9:3306 \(n\/old\) \[reference plugin, iptables-nft CNI-DN-x\] receives the traffic \(its NAT hook priority \(-100\) runs first\)/);
  });
});
