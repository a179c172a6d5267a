import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/portmap/config.js';
import { parseCidr } from '../../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import { sameRule } from '../../../../src/backends/iptables/parse.js';
import { OWN_MARKER, TOP_DNAT, dnatChain, dnatRules, entryRules, jumpToDnat } from '../../../../src/backends/iptables/render.js';
import { natDamage, parseSave, restoreNatDocument } from '../../../../src/backends/iptables/restore.js';

const planOf = (id: string, hostPort: number, ip: string) => {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'net', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] } });
  return buildPlan(config, ownerFor(config, id, 'eth0'), { 4: parseCidr(`${ip}/24`) });
};
const a = planOf('a', 8080, '10.244.0.5');
const b = planOf('b', 8081, '10.244.0.6');

describe('iptables restore of many attachments', () => {
  it('reads iptables-save: declared chains exist even without rules', () => {
    const s = parseSave('*nat\n:PREROUTING ACCEPT [0:0]\n:CNI-HOSTPORT-DNAT - [0:0]\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\nCOMMIT\n');
    expect(s.get(TOP_DNAT)).toEqual([]);
    expect(s.get('PREROUTING')).toEqual([jumpToDnat()]);
  });

  it('one document: shared chains and jumps once, then every attachment, newest entry rules on top', () => {
    const doc = restoreNatDocument(new Map(), [a, b], 4, sameRule)!;
    const lines = doc.split('\n');
    expect(lines.filter((l) => l === `-N ${TOP_DNAT}`)).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('-A PREROUTING'))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith('-A CNI-HOSTPORT-SETMARK'))).toHaveLength(1);
    for (const p of [a, b]) expect(lines).toContain(`-N ${dnatChain('net', p.owner.containerID)}`);
    const inserts = lines.filter((l) => l.startsWith(`-I ${TOP_DNAT} 1`));
    expect(inserts.at(-1)).toContain(dnatChain('net', 'b'));
    expect(lines[0]).toBe('*nat');
    expect(lines.at(-2)).toBe('COMMIT');
    expect(restoreNatDocument(new Map(), [a], 6, sameRule)).toBeUndefined();
  });

  it('after `iptables -t nat -F` (chains left empty): flushes instead of creating, and finds the damage', () => {
    const chain = dnatChain('net', 'a');
    const flushed = parseSave(`*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:${TOP_DNAT} - [0:0]\n:${chain} - [0:0]\nCOMMIT\n`);
    expect(natDamage(flushed, [a], 4, sameRule)).toEqual([
      'IPv4: the jump from PREROUTING to CNI-HOSTPORT-DNAT is missing',
      'IPv4: the jump from OUTPUT to CNI-HOSTPORT-DNAT is missing',
      'IPv4: the jump from POSTROUTING to CNI-HOSTPORT-MASQ is missing',
      'IPv4: 1 attachment(s) lost their rules',
    ]);
    const doc = restoreNatDocument(flushed, [a], 4, sameRule)!;
    expect(doc).toContain(`-F ${chain}`);
    expect(doc).not.toContain(`-N ${TOP_DNAT}`);
    const fp = a.families[0]!;
    const intact = new Map([
      ['PREROUTING', [jumpToDnat()]], ['OUTPUT', [jumpToDnat()]],
      ['POSTROUTING', [['-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']]],
      [TOP_DNAT, entryRules(a, fp)], [chain, [OWN_MARKER, ...dnatRules(a, fp)]],
    ]);
    expect(natDamage(intact, [a], 4, sameRule)).toEqual([]);
  });
});
