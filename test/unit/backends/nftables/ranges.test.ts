/** Port ranges in the nftables backend's decisions (parsed table fixtures): no process, no root. */
import { describe, expect, it } from 'vitest';
import type { Command, Element } from '../../../../src/backends/nftables/json.js';
import { parseTable } from '../../../../src/backends/nftables/parse.js';
import { forwardRows } from '../../../../src/backends/nftables/read.js';
import {
  checkFindings, compareDel, fastDel, gcCommands, migrateForwardMaps, slowAdd,
} from '../../../../src/backends/nftables/reconcile.js';
import {
  OWNERS_SET, conditionalRules, forwardAddrMaps, mapNames, ownerElements, skeletonFor, staticRules, witnessOf,
} from '../../../../src/backends/nftables/render.js';
import { validOwnerIds } from '../../../../src/portmap/plan.js';
import { TCP_8080, planOf, prevWith } from '../../../fakes/calls.js';
import { listing, tableOf } from '../../../fakes/nft-table.js';

const m4 = mapNames(4);
const m6 = mapNames(6);
const udpRange = (first: number, last: number, extra: Record<string, unknown> = {}) =>
  Array.from({ length: last - first + 1 }, (_, i) => ({ hostPort: first + i, containerPort: first + i, protocol: 'udp', ...extra }));
const range = (first: number, last: number) => ({ concat: ['udp', { range: [first, last] }] });

type Op = 'add' | 'delete';
/** The element commands of one kind and set, as [key, value?, comment?] in order. */
function elems(cmds: readonly Command[], op: Op, set: string): unknown[] {
  return cmds.flatMap((c) => {
    const e = (c[op] as { element?: { name: string; elem: unknown[] } } | undefined)?.element;
    return e && e.name === set ? e.elem : [];
  });
}
const keysOf = (list: unknown[]) => list.map((x) => {
  const k = Array.isArray(x) ? x[0] : x;
  return JSON.stringify((k as { elem?: { val: unknown } }).elem?.val ?? k);
});

const oldPod = prevWith('10.244.0.9/24', 'fd00:244::9/64');

describe('ownerElements with a range', () => {
  it('a 16,384-port range publish is one address element per family and no port element', () => {
    const plan = planOf(udpRange(40000, 56383));
    const forwards = ownerElements(plan).filter((e) => e.set !== OWNERS_SET && e.set !== m4.snat && e.set !== m6.snat);
    expect(forwards).toEqual([
      expect.objectContaining({ set: m4.hostportsAddr, key: range(40000, 56383), value: '10.244.0.5' }),
      expect.objectContaining({ set: m6.hostportsAddr, key: range(40000, 56383), value: 'fd00:244::5' }),
    ]);
  });

  it('a range beside single mappings: singles keep address and port elements', () => {
    const plan = planOf([...udpRange(5000, 5009), TCP_8080, { hostPort: 5010, containerPort: 53, protocol: 'udp' }]);
    const v4 = ownerElements(plan).filter((e) => e.set === m4.hostportsAddr || e.set === m4.hostportsPort);
    expect(v4.map((e) => [e.set, JSON.stringify(e.key), e.value])).toEqual([
      [m4.hostportsAddr, '{"concat":["tcp",8080]}', '10.244.0.5'],
      [m4.hostportsPort, '{"concat":["tcp",8080]}', 80],
      [m4.hostportsAddr, '{"concat":["udp",5010]}', '10.244.0.5'],
      [m4.hostportsPort, '{"concat":["udp",5010]}', 53],
      [m4.hostportsAddr, JSON.stringify(range(5000, 5009)), '10.244.0.5'],
    ]);
  });

  it('a range on a host address goes to the hostip map', () => {
    const plan = planOf(udpRange(7000, 7001, { hostIP: '192.0.2.1' }));
    expect(ownerElements(plan).find((e) => e.set === m4.hostipportsAddr)?.key).toEqual({ concat: ['192.0.2.1', 'udp', { range: [7000, 7001] }] });
  });

  it('with conditions: one rule per range, DNAT to the address alone', () => {
    const plan = planOf(udpRange(100, 199), { conditionsV4: ['ip', 'saddr', '192.0.2.0/24'] });
    const rules = conditionalRules(plan);
    expect(rules).toHaveLength(1);
    const text = JSON.stringify(rules[0]);
    expect(text).toContain('"right":{"range":[100,199]}');
    expect(text).toContain('"dnat":{"family":"ip","addr":"10.244.0.5"}');
  });
});

describe('the skeleton', () => {
  it('declares the address maps as interval maps with counters and DNATs spans to the address alone', () => {
    const cmds = skeletonFor({ afterServices: false, serviceCIDRs: [] });
    const maps = cmds.flatMap((c) => {
      const m = (c.add as { map?: { name: string; flags?: unknown; stmt?: unknown } } | undefined)?.map;
      return m && forwardAddrMaps().includes(m.name) ? [m] : [];
    });
    expect(maps).toHaveLength(4);
    for (const m of maps) expect([m.flags, m.stmt]).toEqual([['interval'], [{ counter: null }]]);
    const hostports = JSON.stringify(staticRules().hostports);
    expect(hostports).toContain(`"op":"!=","left":{"concat":[{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"right":"@${m4.hostportsPort}"`);
  });
});

describe('slowAdd with ranges', () => {
  const stale = planOf(udpRange(40000, 56383), {}, 'old', oldPod);

  it('a retried ADD of the same range changes no element', () => {
    const plan = planOf(udpRange(40000, 56383));
    const { commands, takeovers } = slowAdd(tableOf({ elements: ownerElements(plan) }), plan);
    expect(takeovers).toEqual([]);
    expect(elems(commands, 'delete', m4.hostportsAddr)).toEqual([]);
    expect(elems(commands, 'add', m4.hostportsAddr)).toEqual([]);
  });

  it("a partial overlap: the stale range is replaced by what stays of it, ours is added, the stale witness goes", () => {
    const plan = planOf(udpRange(50000, 60000), {}, 'new');
    const { commands, takeovers } = slowAdd(tableOf({ elements: ownerElements(stale) }), plan);
    expect(keysOf(elems(commands, 'delete', m4.hostportsAddr))).toEqual([JSON.stringify(range(40000, 56383))]);
    const added = elems(commands, 'add', m4.hostportsAddr) as Array<[{ elem: { val: unknown; comment: string } }, string]>;
    expect(added.map(([k, v]) => [JSON.stringify(k.elem.val), v, k.elem.comment])).toEqual([
      [JSON.stringify(range(40000, 49999)), '10.244.0.9', stale.owner.comment],
      [JSON.stringify(range(50000, 60000)), '10.244.0.5', plan.owner.comment],
    ]);
    // The deletes come before the adds: an interval map refuses overlapping elements.
    const firstAdd = commands.findIndex((c) => elems([c], 'add', m4.hostportsAddr).length > 0);
    const firstDelete = commands.findIndex((c) => elems([c], 'delete', m4.hostportsAddr).length > 0);
    expect(firstDelete).toBeLessThan(firstAdd);
    expect(takeovers.map((t) => [t.set, t.key])).toEqual([[m4.hostportsAddr, 'udp 40000-56383'], [m6.hostportsAddr, 'udp 40000-56383']]);
    expect(keysOf(elems(commands, 'delete', OWNERS_SET))).toEqual([JSON.stringify(witnessOf(stale.owner.id).key)]);
  });

  it('a single inside a stale range splits it in two', () => {
    const plan = planOf([{ hostPort: 45000, containerPort: 80, protocol: 'udp' }], {}, 'new');
    const { commands } = slowAdd(tableOf({ elements: ownerElements(stale) }), plan);
    expect(keysOf(elems(commands, 'add', m4.hostportsAddr))).toEqual([
      JSON.stringify(range(40000, 44999)), JSON.stringify(range(45001, 56383)), '{"concat":["udp",45000]}',
    ]);
    expect(keysOf(elems(commands, 'add', m4.hostportsPort))).toEqual(['{"concat":["udp",45000]}']);
  });

  it("a range over stale singles deletes their address and port elements (the port would stay stale)", () => {
    const singles = planOf([{ hostPort: 40010, containerPort: 80, protocol: 'udp' }, { hostPort: 40020, containerPort: 40020, protocol: 'udp' }], {}, 'old', oldPod);
    const orphan: Element = { set: m4.hostportsPort, key: { concat: ['udp', 40030] }, value: 9, comment: singles.owner.comment };
    const plan = planOf(udpRange(40000, 40100), {}, 'new');
    const { commands, takeovers } = slowAdd(tableOf({ elements: [...ownerElements(singles), orphan] }), plan);
    expect(keysOf(elems(commands, 'delete', m4.hostportsAddr)).sort()).toEqual(['{"concat":["udp",40010]}', '{"concat":["udp",40020]}']);
    expect(keysOf(elems(commands, 'delete', m4.hostportsPort)).sort()).toEqual(['{"concat":["udp",40010]}', '{"concat":["udp",40020]}', '{"concat":["udp",40030]}']);
    expect(keysOf(elems(commands, 'add', m4.hostportsAddr))).toEqual([JSON.stringify(range(40000, 40100))]);
    expect(takeovers.some((t) => t.from === singles.owner.comment)).toBe(true);
  });

  it('a range that covers several stale ranges and singles deletes each once, keeping the parts outside', () => {
    const a = planOf(udpRange(100, 199), {}, 'a', oldPod);
    const b = planOf(udpRange(300, 399), {}, 'b', prevWith('10.244.0.10/24'));
    const plan = planOf(udpRange(150, 350), {}, 'new');
    const { commands } = slowAdd(tableOf({ elements: [...ownerElements(a), ...ownerElements(b)] }), plan);
    expect(keysOf(elems(commands, 'delete', m4.hostportsAddr))).toEqual([JSON.stringify(range(100, 199)), JSON.stringify(range(300, 399))]);
    expect(keysOf(elems(commands, 'add', m4.hostportsAddr))).toEqual([
      JSON.stringify(range(100, 149)), JSON.stringify(range(351, 399)), JSON.stringify(range(150, 350)),
    ]);
  });
});

describe('migration of a table made before ranges', () => {
  const pod = planOf([TCP_8080], {}, 'p');

  it('deletes each old address map after the rules using it, remakes it in the skeleton, carries every element over', () => {
    const state = tableOf({ elements: ownerElements(pod), oldShape: true });
    const { before, after } = migrateForwardMaps(state);
    expect(before[0]).toEqual({ flush: { chain: { family: 'inet', table: 'cni_portmap', name: 'hostports' } } });
    expect(before.slice(1).map((c) => (c.delete as { map: { name: string } }).map.name)).toEqual([m4.hostportsAddr, m6.hostportsAddr]);
    expect(keysOf(after.flatMap((c) => (c.add as { element: { elem: unknown[] } }).element.elem))).toEqual(['{"concat":["tcp",8080]}', '{"concat":["tcp",8080]}']);
    const plan = planOf(udpRange(1000, 1100), {}, 'r');
    const cmds = slowAdd(state, plan).commands;
    const at = (pred: (c: Command) => boolean) => cmds.findIndex(pred);
    const delMap = at((c) => (c.delete as { map?: unknown } | undefined)?.map !== undefined);
    const addMap = at((c) => (c.add as { map?: { name: string } } | undefined)?.map?.name === m4.hostportsAddr);
    const carried = at((c) => elems([c], 'add', m4.hostportsAddr).length > 0 && JSON.stringify(c).includes('8080'));
    expect(delMap).toBeGreaterThanOrEqual(0);
    expect(delMap).toBeLessThan(addMap);
    expect(addMap).toBeLessThan(carried);
    // The new range is added too; the old pod's elements keep their owner.
    expect(JSON.stringify(cmds)).toContain(JSON.stringify(range(1000, 1100)));
    expect(JSON.stringify(elems(cmds, 'add', m4.hostportsAddr))).toContain(pod.owner.comment);
  });

  it('a table of the current shape is not migrated; GC migrates an old one too', () => {
    expect(migrateForwardMaps(tableOf({ elements: ownerElements(pod) }))).toEqual({ before: [], after: [] });
    const gc = gcCommands(tableOf({ elements: ownerElements(pod), oldShape: true }), {
      network: 'net', valid: validOwnerIds('net', [{ containerID: 'p', ifname: 'eth0' }]), settings: { afterServices: false, serviceCIDRs: [] },
    });
    expect(JSON.stringify(gc)).toContain('"delete":{"map"');
  });
});

describe('DEL, CHECK and list with ranges', () => {
  const plan = planOf([...udpRange(40000, 56383), TCP_8080]);

  it('the fast DEL deletes the range by its key; compare-and-delete covers split pieces', () => {
    expect(keysOf(elems(fastDel(plan), 'delete', m4.hostportsAddr))).toContain(JSON.stringify(range(40000, 56383)));
    const piece: Element = { set: m4.hostportsAddr, key: range(40000, 40999), value: '10.244.0.5', comment: plan.owner.comment };
    const cmds = compareDel(tableOf({ elements: [piece] }), plan.owner);
    expect(keysOf(elems(cmds, 'delete', m4.hostportsAddr))).toEqual([JSON.stringify(range(40000, 40999))]);
  });

  it('CHECK passes on the range and reports it when another attachment took part of it', () => {
    expect(checkFindings(tableOf({ elements: ownerElements(plan) }), plan)).toEqual([]);
    const other = planOf([{ hostPort: 45000, containerPort: 80, protocol: 'udp' }], {}, 'thief');
    const split = slowAdd(tableOf({ elements: ownerElements(plan) }), other).commands;
    expect(split.length).toBeGreaterThan(0);
    const remains = ownerElements(plan).filter((e) => e.set !== m4.hostportsAddr || JSON.stringify(e.key) !== JSON.stringify(range(40000, 56383)));
    const findings = checkFindings(tableOf({ elements: remains }), plan);
    expect(findings[0]?.msg).toBe(`missing hostPort entry udp 40000-56383 in ${m4.hostportsAddr}`);
  });

  it('portmap list rows: the range with its last port and the container ports it keeps, counters as connections', () => {
    const state = parseTable(listing({ elements: ownerElements(plan) }).replace(
      '"comment":', '"counter":{"packets":7,"bytes":420},"comment":'));
    const rows = forwardRows(state).filter((r) => r.family === 4);
    expect(rows.map((r) => [r.protocol, r.hostPort, r.lastHostPort, r.containerPort, r.podIP])).toEqual([
      ['tcp', 8080, undefined, 80, '10.244.0.5'],
      ['udp', 40000, 56383, 40000, '10.244.0.5'],
    ]);
    expect(rows.every((r) => r.containerID === 'c1')).toBe(true);
  });
});

describe('the DEL answered at commit', () => {
  it('sees the end of the echoed document once, whatever the chunks, braces in comments included', async () => {
    const { jsonDocumentEnded } = await import('../../../../src/backends/nftables/runner.js');
    const doc = JSON.stringify({ nftables: [{ delete: { element: { name: 'x', elem: [{ concat: ['udp', 1] }], comment: "e'x}{ ]" } } }] });
    for (const cut of [1, 5, doc.length - 1]) {
      const ended = jsonDocumentEnded();
      expect(ended(doc.slice(0, cut))).toBe(false);
      expect(ended(doc)).toBe(true);
    }
    // Megabytes of echo in many chunks: linear (this took seconds with a parse per chunk).
    const big = JSON.stringify({ nftables: Array.from({ length: 40_000 }, (_, i) => ({ delete: { element: { elem: [{ concat: ['udp', i] }] } } })) });
    const ended = jsonDocumentEnded();
    let done = false;
    for (let i = 4096; i <= big.length + 4096 && !done; i += 4096) done = ended(big.slice(0, i));
    expect(done).toBe(true);
  });
});
