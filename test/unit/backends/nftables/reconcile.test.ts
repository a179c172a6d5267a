/** The nftables backend's decisions, from parsed table fixtures: no process, no root. */
import { describe, expect, it } from 'vitest';
import { base } from '../../../../src/backends/nftables/json.js';
import {
  checkFindings, compareDel, describeKey, fastAdd, fastDel, gcCommands, slowAdd,
} from '../../../../src/backends/nftables/reconcile.js';
import { OWNERS_SET, mapNames, ownerElements, podnetElements, witnessOf } from '../../../../src/backends/nftables/render.js';
import { validOwnerIds } from '../../../../src/portmap/plan.js';
import { TCP_8080, planOf, prevWith } from '../../../fakes/calls.js';
import { tableOf } from '../../../fakes/nft-table.js';

const m4 = mapNames(4);
const text = (cmds: unknown[]) => JSON.stringify(cmds);
const ops = (cmds: Array<Record<string, unknown>>, op: string, set: string) =>
  cmds.filter((c) => op in c && (c[op] as { element?: { name?: string } }).element?.name === set);

/** The same pod's plan, for another container: a pod replacing a stale one on the same host port. */
const stale = planOf([TCP_8080], {}, 'old', prevWith('10.244.0.9/24', 'fd00:244::9/64'));
const fresh = planOf([TCP_8080], {}, 'new');

describe('fastAdd / fastDel', () => {
  it('the fast ADD only adds, starting with the ready mark, and creates the witness; the fast DEL only deletes, witness first', () => {
    const add = fastAdd(fresh);
    expect(add.every((c) => 'add' in c || 'create' in c)).toBe(true);
    expect(text(add[0] ? [add[0]] : [])).toContain('"name":"ready"');
    // `create` fails when the attachment already has a witness (a re-ADD), so its old forwards cannot stay.
    expect(add.filter((c) => 'create' in c).map((c) => (c.create as { element: { name: string } }).element.name)).toEqual([OWNERS_SET]);
    const del = fastDel(fresh);
    expect(del.every((c) => 'delete' in c)).toBe(true);
    expect((del[0] as { delete: { element: { name: string } } }).delete.element.name).toBe(OWNERS_SET);
    expect(del).toHaveLength(ownerElements(fresh).length);
  });
});

describe('slowAdd', () => {
  it('on an empty node writes the skeleton and adds every element', () => {
    const { commands, takeovers } = slowAdd(undefined, fresh);
    expect(takeovers).toEqual([]);
    expect(text(commands)).toContain('"table":{"family":"inet","name":"cni_portmap"}');
    for (const e of ownerElements(fresh)) expect(ops(commands, 'add', e.set).length).toBeGreaterThan(0);
  });

  it("takes another owner's key over: replaces the element and removes the stale owner's witness", () => {
    const state = tableOf({ elements: ownerElements(stale) });
    const { commands, takeovers } = slowAdd(state, fresh);
    expect(takeovers.map((t) => [t.set, t.key])).toEqual([
      [m4.hostportsAddr, 'tcp 8080'], [m4.hostportsPort, 'tcp 8080'],
      [mapNames(6).hostportsAddr, 'tcp 8080'], [mapNames(6).hostportsPort, 'tcp 8080'],
    ]);
    expect(takeovers[0]!.from).toBe(stale.owner.comment);
    // delete + add of the key, and a compare-and-delete of the old witness (fails if it changed meanwhile)
    expect(ops(commands, 'delete', m4.hostportsAddr)).toHaveLength(1);
    const witness = JSON.stringify(witnessOf(stale.owner.id).key);
    expect(ops(commands, 'delete', OWNERS_SET).map((c) => JSON.stringify((c.delete as { element: { elem: unknown[] } }).element.elem[0]))).toEqual([witness]);
  });

  it('an ADD of the attachment with other ports removes the forwards the new plan no longer holds', () => {
    const before = planOf([TCP_8080, { hostPort: 9000, containerPort: 90, protocol: 'udp' }, { hostPort: 40000, containerPort: 40000, protocol: 'udp' }, { hostPort: 40001, containerPort: 40001, protocol: 'udp' }]);
    const after = planOf([{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }, { hostPort: 40001, containerPort: 40001, protocol: 'udp' }]);
    const { commands, takeovers } = slowAdd(tableOf({ elements: ownerElements(before) }), after);
    expect(takeovers).toEqual([]);
    const deleted = (set: string) => ops(commands, 'delete', set).map((c) => describeKey({ key: (c.delete as { element: { elem: unknown[] } }).element.elem[0] }));
    expect(deleted(m4.hostportsAddr).sort()).toEqual(['tcp 8080', 'udp 40000-40001', 'udp 9000']);
    expect(deleted(m4.hostportsPort).sort()).toEqual(['tcp 8080', 'udp 9000']);
    // The cut range is not added back in part: 40000 was ours too.
    expect(text(ops(commands, 'add', m4.hostportsAddr))).not.toContain('40000');
    expect(text(ops(commands, 'add', m4.hostportsAddr))).toContain('8081');
    expect(deleted(OWNERS_SET)).toEqual([]);
  });

  it('leaves its own identical elements alone (a retried ADD) and takes nothing over', () => {
    const { commands, takeovers } = slowAdd(tableOf({ elements: ownerElements(fresh) }), fresh);
    expect(takeovers).toEqual([]);
    expect(ops(commands, 'delete', m4.hostportsAddr)).toEqual([]);
    expect(ops(commands, 'add', m4.hostportsAddr)).toEqual([]);
  });

  it('overlapping pod subnets: skips a subnet inside one already there, replaces subnets inside the new one', () => {
    const outer = { set: m4.podnets, key: { prefix: { addr: '10.244.0.0', len: 16 } } };
    const inside = slowAdd(tableOf({ elements: [outer] }), fresh).commands;
    expect(ops(inside, 'add', m4.podnets)).toEqual([]);
    const inner = { set: m4.podnets, key: { prefix: { addr: '10.244.0.128', len: 25 } } };
    const replacing = slowAdd(tableOf({ elements: [inner] }), fresh).commands;
    expect(ops(replacing, 'delete', m4.podnets)).toHaveLength(1);
    expect(text(ops(replacing, 'add', m4.podnets))).toContain('"len":24');
  });

  it('replaces a /32 pod subnet (listed as a bare address) inside the new subnet, instead of a conflicting add', () => {
    const host = { set: m4.podnets, key: '10.244.0.9' };
    const cmds = slowAdd(tableOf({ elements: [host] }), fresh).commands;
    expect(ops(cmds, 'delete', m4.podnets).map((c) => (c.delete as { element: { elem: unknown[] } }).element.elem[0])).toEqual(['10.244.0.9']);
  });

  it('re-hooks base chains at the wrong priority (afterServices changed)', () => {
    const commands = slowAdd(tableOf({ priority: -100 }), planOf([TCP_8080], { afterServices: true })).commands;
    const deleted = commands.filter((c) => 'delete' in c && (c.delete as { chain?: unknown }).chain).map((c) => (c.delete as { chain: { name: string } }).chain.name);
    expect(deleted).toEqual(['prerouting', 'output']);
  });
});

describe('compareDel', () => {
  it("compares and deletes exactly the owner's elements and conditional rules", () => {
    const cond = planOf([TCP_8080], { conditionsV4: ['ip', 'saddr', '192.0.2.0/24'] });
    const state = tableOf({
      elements: [...ownerElements(fresh), ...ownerElements(stale)],
      extraRules: [
        { chain: 'conditional', handle: 99, comment: fresh.owner.comment, expr: [] },
        { chain: 'conditional', handle: 98, comment: cond.owner.comment.replace(cond.owner.id, '0'.repeat(16)), expr: [] },
      ],
    });
    const cmds = compareDel(state, fresh.owner);
    const mine = ownerElements(fresh).length;
    expect(cmds.filter((c) => 'add' in c)).toHaveLength(mine);
    expect(cmds.filter((c) => 'delete' in c && (c.delete as { element?: unknown }).element)).toHaveLength(mine);
    expect(cmds.filter((c) => 'delete' in c && (c.delete as { rule?: unknown }).rule)).toEqual([{ delete: { rule: { ...base, chain: 'conditional', handle: 99 } } }]);
    expect(text(cmds)).not.toContain(stale.owner.id);
  });
});

describe('gcCommands', () => {
  const other = planOf([TCP_8080], {}, 'c9');
  const otherNetwork = planOf([{ hostPort: 9090, containerPort: 90 }], { name: 'net2' }, 'x', prevWith('10.245.0.7/24'));

  it('removes elements of attachments of its network that are not valid, and keeps everything else', () => {
    const state = tableOf({ elements: [...ownerElements(fresh), ...ownerElements(otherNetwork), ...podnetElements(fresh)] });
    const cmds = gcCommands(state, { network: 'net', valid: validOwnerIds('net', []), settings: { afterServices: false, serviceCIDRs: [] } });
    const deleted = text(cmds.filter((c) => 'delete' in c));
    expect(deleted).toContain('8080');
    expect(deleted).not.toContain('9090');
    // The pod subnet goes with the last hairpin pod in it.
    expect(ops(cmds, 'delete', m4.podnets)).toHaveLength(1);
    // The skeleton is rewritten (a chain flushed by hand comes back).
    expect(text(cmds)).toContain('"flush":{"chain"');
  });

  it('prunes a /32 pod subnet, which nft lists as a bare address', () => {
    const state = tableOf({ elements: [...ownerElements(fresh), { set: m4.podnets, key: '10.244.0.77', comment: '10.244.0.77/32' }] });
    const cmds = gcCommands(state, { network: 'net', valid: validOwnerIds('net', [{ containerID: 'new', ifname: 'eth0' }]) });
    expect(ops(cmds, 'delete', m4.podnets).map((c) => (c.delete as { element: { elem: unknown[] } }).element.elem[0])).toEqual(['10.244.0.77']);
  });

  it('keeps valid attachments and the subnets they use; without settings it leaves the skeleton alone', () => {
    const state = tableOf({ elements: [...ownerElements(fresh), ...ownerElements(other), ...podnetElements(fresh)] });
    const cmds = gcCommands(state, { network: 'net', valid: validOwnerIds('net', [{ containerID: 'new', ifname: 'eth0' }]) });
    expect(text(cmds)).not.toContain(fresh.owner.id.slice(0, 8));
    expect(ops(cmds, 'delete', m4.podnets)).toEqual([]);
    expect(text(cmds)).not.toContain('"flush"');
    expect(ops(cmds, 'delete', OWNERS_SET)).toHaveLength(1);
  });
});

describe('checkFindings', () => {
  it('is empty when the table holds the skeleton and the attachment', () => {
    expect(checkFindings(tableOf({ elements: ownerElements(fresh) }), fresh)).toEqual([]);
  });

  it('reports a missing table, missing chains, flushed chains, missing and taken-over entries', () => {
    expect(checkFindings(undefined, fresh)[0]?.msg).toBe('nftables table inet cni_portmap not found');
    expect(checkFindings(tableOf({ elements: ownerElements(fresh), priority: null }), fresh).map((f) => f.msg)).toContain('chain prerouting missing from table inet cni_portmap');
    expect(checkFindings(tableOf({ elements: ownerElements(fresh), rules: false }), fresh)[0]?.msg).toMatch(/does not hold the expected rules/);
    expect(checkFindings(tableOf(), fresh)[0]?.msg).toBe(`missing hostPort entry tcp 8080 in ${m4.hostportsAddr}`);
    const taken = checkFindings(tableOf({ elements: ownerElements(stale) }), fresh);
    expect(taken[0]?.msg).toBe(`hostPort entry tcp 8080 in ${m4.hostportsAddr} belongs to ${stale.owner.comment}`);
    expect(taken[0]?.details).toMatch(/another attachment took the port/);
  });

  it('does not require the witness (a DEL without it only compares)', () => {
    const withoutWitness = ownerElements(fresh).filter((e) => e.set !== OWNERS_SET);
    expect(checkFindings(tableOf({ elements: withoutWitness }), fresh)).toEqual([]);
  });
});
