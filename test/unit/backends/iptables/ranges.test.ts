/** Port ranges in the iptables rendering: multiport groups count a range as two ports, one DNAT per range. */
import { describe, expect, it } from 'vitest';
import { dnatRules, entryRules } from '../../../../src/backends/iptables/render.js';
import { TCP_8080, planOf } from '../../../fakes/calls.js';

const udpRange = (first: number, last: number) =>
  Array.from({ length: last - first + 1 }, (_, i) => ({ hostPort: first + i, containerPort: first + i, protocol: 'udp' }));

describe('iptables rendering of ranges', () => {
  it('a 16,384-port range is one entry rule and three chain rules per family', () => {
    const plan = planOf(udpRange(40000, 56383));
    const [v4, v6] = plan.families;
    expect(entryRules(plan, v4!).map((r) => r[r.indexOf('--destination-ports') + 1])).toEqual(['40000:56383']);
    expect(dnatRules(plan, v4!)).toEqual([
      ['-p', 'udp', '--dport', '40000:56383', '-s', '10.244.0.0/24', '-j', 'CNI-HOSTPORT-SETMARK'],
      ['-p', 'udp', '--dport', '40000:56383', '-s', '127.0.0.1', '-j', 'CNI-HOSTPORT-SETMARK'],
      ['-p', 'udp', '--dport', '40000:56383', '-j', 'DNAT', '--to-destination', '10.244.0.5'],
    ]);
    // IPv6: the address alone, without brackets or port.
    expect(dnatRules(plan, v6!).at(-1)).toEqual(['-p', 'udp', '--dport', '40000:56383', '-j', 'DNAT', '--to-destination', 'fd00:244::5']);
  });

  it('singles keep the reference layout, ranges follow them; a chunk never counts more than 15', () => {
    const mappings = [
      ...Array.from({ length: 14 }, (_, i) => ({ hostPort: 1000 + 2 * i, containerPort: 80, protocol: 'udp' })),
      ...udpRange(2000, 2009), ...udpRange(3000, 3001), TCP_8080,
    ];
    const plan = planOf(mappings);
    const lists = entryRules(plan, plan.families[0]!).map((r) => [r[r.indexOf('-p') + 1], r[r.indexOf('--destination-ports') + 1]]);
    expect(lists).toEqual([
      ['tcp', '8080'],
      // 14 ports, and a range would make 16: it starts the next chunk.
      ['udp', '1000,1002,1004,1006,1008,1010,1012,1014,1016,1018,1020,1022,1024,1026'],
      ['udp', '2000:2009,3000:3001'],
    ]);
    const rules = dnatRules(plan, plan.families[0]!);
    expect(rules.filter((r) => r.includes('DNAT')).map((r) => `${r[3]} ${r.at(-1)}`)).toEqual([
      ...Array.from({ length: 14 }, (_, i) => `${1000 + 2 * i} 10.244.0.5:80`), '8080 10.244.0.5:80', '2000:2009 10.244.0.5', '3000:3001 10.244.0.5',
    ]);
  });
});
