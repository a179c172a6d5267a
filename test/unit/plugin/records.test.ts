import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../../src/backends/backend.js';
import { parseCidr } from '../../../src/net/ip.js';
import { parseConfig } from '../../../src/portmap/config.js';
import { type Plan, buildPlan, ownerFor } from '../../../src/portmap/plan.js';
import { RecordStore, readLiveRecords } from '../../../src/plugin/records.js';
import { restoreAll } from '../../../src/plugin/restore.js';
import { livePlans } from '../../../src/plugin/self-healing.js';
import { cacheText } from '../cni/cache.test.js';
import { parseCacheEntry } from '../../../src/cni/cache.js';
import { adoptionOf } from '../../../src/plugin/adopt.js';

const planOf = (id: string, hostPort: number) => {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'net', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] } });
  return buildPlan(config, ownerFor(config, id, 'eth0'), { 4: parseCidr('10.244.0.5/24') });
};
const LIVE = `/proc/${process.pid}/ns/net`;

/** A backend that records what restore asked of it. */
function fakeBackend(damage: string[] = ['table inet cni_portmap is missing']): Backend & { restored: Plan[][] } {
  const restored: Plan[][] = [];
  return {
    name: 'nftables', provesOwnership: true, restored,
    add: async () => ({ path: 'fast', takeovers: [] }), del: async () => 'fast', check: async () => undefined, gc: async () => undefined, status: async () => undefined,
    damage: async () => damage,
    restore: async (plans, opts) => {
      if (damage.length > 0 || opts?.force) restored.push([...plans]);
      return damage;
    },
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'records-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('the records store', () => {
  it('keeps one file per attachment in a directory of this network namespace; lists live and dead ones', () => {
    const store = new RecordStore(dir);
    store.write(planOf('live', 8080), 'nftables', LIVE);
    store.write(planOf('gone', 8081), 'nftables', '/var/run/netns/no-such-pod');
    expect(readdirSync(dir)).toEqual([expect.stringMatching(/^netns-\d+-\d+$/)]);
    const { records, invalid } = store.list();
    expect(invalid).toEqual([]);
    const { live, dead } = store.sort(records);
    expect(live.map((r) => r.record.containerID)).toEqual(['live']);
    expect(dead.map((r) => [r.record.containerID, r.reason])).toEqual([['gone', expect.stringMatching(/is gone/)]]);
    expect(readLiveRecords(dir).map((r) => r.containerID)).toEqual(['live']);
    // self-healing removes the dead record on the way
    expect(livePlans(store, 'nftables').map((p) => p.owner.containerID)).toEqual(['live']);
    expect(store.list().records).toHaveLength(1);
    expect(livePlans(store, 'iptables')).toEqual([]);
  });

  it('refuses a file whose name is not its owner, or whose content is not a record', () => {
    const store = new RecordStore(dir);
    const rec = store.write(planOf('a', 8080), 'nftables', LIVE);
    writeFileSync(join(store.dir, '0123456789abcdef.json'), JSON.stringify(rec));
    writeFileSync(join(store.dir, 'fedcba9876543210.json'), '{"v":1}');
    const { records, invalid } = store.list();
    expect(records).toHaveLength(1);
    expect(invalid.map((i) => i.error)).toEqual([expect.stringMatching(/holds the record of/), expect.stringMatching(/invalid record/)]);
  });
});

describe('restoreAll', () => {
  it('restores live records oldest first, removes dead ones, never adopts a cache entry naming the node itself', async () => {
    const store = new RecordStore(dir);
    store.write(planOf('first', 8080), 'nftables', LIVE);
    await new Promise((r) => setTimeout(r, 5));
    store.write(planOf('second', 8081), 'nftables', LIVE);
    store.write(planOf('gone', 8082), 'nftables', '/var/run/netns/no-such-pod');
    const cache = join(dir, 'cache');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(cache);
    writeFileSync(join(cache, 'podnet-c1-eth0'), cacheText({ netns: LIVE }));
    const backend = fakeBackend();
    const report = await restoreAll({ dataDir: dir, cacheDir: cache }, async () => backend);
    expect(report.ok).toBe(true);
    expect(backend.restored).toHaveLength(1);
    expect(backend.restored[0]!.map((p) => p.owner.containerID)).toEqual(['first', 'second']);
    expect(report.skipped).toEqual([
      expect.objectContaining({ name: 'net/gone/eth0', removed: true }),
      expect.objectContaining({ name: 'podnet/c1/eth0', reason: expect.stringMatching(/node's own network namespace/) }),
    ]);
    expect(store.list().records.map((r) => r.record.containerID).sort()).toEqual(['first', 'second']);
  });

  it('adopts what the plugin would have made for a cached attachment', () => {
    const a = adoptionOf(parseCacheEntry(cacheText()));
    expect(a).toMatchObject({ ok: true, netns: '/var/run/netns/cni-1' });
    if (a.ok) expect(a.plan.families[0]).toMatchObject({ pod: { address: '10.244.0.5' }, forwards: [{ hostPort: 8080, containerPort: 80 }], masquerade: 'none' });
    expect(adoptionOf(parseCacheEntry(cacheText({ capabilityArgs: {} })))).toEqual({ ok: false, reason: 'no port mappings' });
  });

  it('changes nothing when every attachment is intact (unless --force), nor in a dry run', async () => {
    const store = new RecordStore(dir);
    store.write(planOf('a', 8080), 'nftables', LIVE);
    const intact = fakeBackend([]);
    const r = await restoreAll({ dataDir: dir }, async () => intact);
    expect(r.restored).toEqual([]);
    expect(r.intact).toHaveLength(1);
    expect(intact.restored).toEqual([]);
    expect((await restoreAll({ dataDir: dir, force: true }, async () => intact)).restored).toHaveLength(1);
    const damaged = fakeBackend();
    expect((await restoreAll({ dataDir: dir, dryRun: true }, async () => damaged)).restored).toHaveLength(1);
    expect(damaged.restored).toEqual([]);
  });
});
