import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/portmap/config.js';
import { parseCidr } from '../../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import type { TableState } from '../../../../src/backends/nftables/parse.js';
import { OWNERS_SET, READY_MAP, baseChains, mapNames, ownerElements, witnessOf } from '../../../../src/backends/nftables/render.js';
import { forwardDamage, restoreCommands, skeletonDamage } from '../../../../src/backends/nftables/restore.js';

const planOf = (id: string, hostPort: number, ip: string, extra: Record<string, unknown> = {}) => {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'net', type: 'portmap', ...extra, runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] } });
  return buildPlan(config, ownerFor(config, id, 'eth0'), { 4: parseCidr(`${ip}/24`) });
};

type Cmd = Record<string, Record<string, { name?: string; elem?: unknown[] }>>;
const added = (cmds: readonly Record<string, unknown>[], set: string): unknown[] =>
  (cmds as Cmd[]).flatMap((c) => (c.add?.element?.name === set ? (c.add.element.elem ?? []) : []));

describe('nftables restore of many attachments', () => {
  it('writes the skeleton once and every attachment, batched per set', () => {
    const a = planOf('a', 8080, '10.244.0.5');
    const b = planOf('b', 8081, '10.244.0.6', { afterServices: true });
    const { commands, takeovers } = restoreCommands(undefined, [a, b]);
    expect(takeovers).toEqual([]);
    const tables = commands.filter((c) => (c as Cmd).add?.table);
    expect(tables).toHaveLength(1);
    // the newest plan's settings shape the skeleton (afterServices: dstnat+10)
    const pre = commands.find((c) => (c as { add?: { chain?: { name: string; prio?: number } } }).add?.chain?.name === 'prerouting');
    expect((pre as { add: { chain: { prio: number } } }).add.chain.prio).toBe(-90);
    expect(added(commands, mapNames(4).hostportsAddr)).toHaveLength(2);
    expect(added(commands, OWNERS_SET)).toHaveLength(2);
    expect(commands.filter((c) => (c as Cmd).add?.element?.name === mapNames(4).hostportsAddr)).toHaveLength(1);
  });

  it('a key two attachments claim goes to the newer one, whose takeover drops the older witness', () => {
    const old = planOf('old', 8080, '10.244.0.5');
    const young = planOf('young', 8080, '10.244.0.6');
    const { commands, takeovers } = restoreCommands(undefined, [old, young]);
    const addrs = added(commands, mapNames(4).hostportsAddr) as Array<[unknown, string]>;
    expect(addrs.map((e) => e[1])).toEqual(['10.244.0.6']);
    expect(takeovers.map((t) => t.to)).toEqual(expect.arrayContaining([young.owner.comment]));
    expect(added(commands, OWNERS_SET)).toHaveLength(1);
  });

  it('over an existing table: keeps what is right, replaces a stranger, removes its witness', () => {
    const mine = planOf('mine', 8080, '10.244.0.5');
    const stranger = planOf('stranger', 8080, '10.244.0.9');
    const state: TableState = { chains: new Map(), rules: [], elements: [...ownerElements(stranger), ...ownerElements(mine).filter((e) => e.set === OWNERS_SET)] };
    const { commands } = restoreCommands(state, [mine]);
    const deletes = (commands as Cmd[]).filter((c) => c.delete?.element).map((c) => c.delete!.element!.name);
    expect(deletes).toEqual(expect.arrayContaining([mapNames(4).hostportsAddr, mapNames(4).hostportsPort, OWNERS_SET]));
    // our own witness is already there: not added again
    expect(added(commands, OWNERS_SET).filter((e) => JSON.stringify(e).includes(String(witnessOf(mine.owner.id).key)))).toHaveLength(0);
  });

  it('names what is damaged: the table, chains, static rules, the ready mark, missing forwards', () => {
    const a = planOf('a', 8080, '10.244.0.5');
    expect(skeletonDamage(undefined, a)).toEqual(['table inet cni_portmap is missing']);
    const chains: TableState['chains'] = new Map(baseChains(-100).map((c) => [c.name, { type: c.type, hook: c.hook, prio: c.prio }]));
    chains.set('hostports', {});
    chains.set('conditional', {});
    const flushed: TableState = { chains, rules: [], elements: [] };
    const d = skeletonDamage(flushed, a);
    expect(d).toContain('the ready mark is missing');
    expect(d.some((x) => /lost its rules/.test(x))).toBe(true);
    expect(skeletonDamage({ ...flushed, chains: new Map([...chains].filter(([n]) => n !== 'output')) }, a)).toContain('chain output is missing');
    expect(forwardDamage(flushed, [a])).toEqual([`net/a/eth0: ${ownerElements(a).length - 1} entries missing`]);
    expect(forwardDamage({ ...flushed, elements: [...ownerElements(a), { set: READY_MAP, key: 1, value: 2 }] }, [a])).toEqual([]);
  });
});
