/** The verbs, without root: fake backends and fake host helpers (src/plugin/deps.ts) record what they are asked. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CniError } from '../../../src/cni/errors.js';
import { LockTimeoutError } from '../../../src/host/lock.js';
import type { PluginDeps } from '../../../src/plugin/deps.js';
import { createPlugin } from '../../../src/plugin/plugin.js';
import type { Backend } from '../../../src/backends/backend.js';
import { FakeBackend } from '../../fakes/backend.js';
import { RecordStore } from '../../../src/plugin/records.js';

/** Records of the verbs under test go to a private directory, removed after the file's tests. */
const RECORDS = mkdtempSync(join(tmpdir(), 'plugin-records-'));
afterAll(() => rmSync(RECORDS, { recursive: true, force: true }));
import { TCP_8080, UDP_8053, call } from '../../fakes/calls.js';

interface Recorded {
  deps: PluginDeps;
  backend: FakeBackend;
  events: string[];
}

function fakeDeps(overrides: Partial<PluginDeps> = {}, backend = new FakeBackend('nftables')): Recorded {
  const events: string[] = [];
  const deps: PluginDeps = {
    backendFor: async () => backend as Backend,
    withLock: async (what, fn) => {
      events.push(`lock ${what}`);
      try {
        return await fn();
      } finally {
        events.push('unlock');
      }
    },
    routeDevice: async (address) => (events.push(`route ${address}`), 'cni0'),
    readRouteLocalnet: async () => true,
    enableRouteLocalnet: async (dev) => void events.push(`route_localnet ${dev}`),
    flushUdpConntrack: async (targets) => {
      for (const t of targets) for (const p of t.ports) for (let port = p.first; port <= p.last; port++) events.push(`conntrack ${port} v${t.family}`);
    },
    testpoint: async () => undefined,
    records: () => new RecordStore(RECORDS),
    ...overrides,
  };
  return { deps, backend, events };
}

const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as CniError);

describe('ADD', () => {
  it('applies the plan under the lock, then flushes UDP conntrack per port and family and enables route_localnet', async () => {
    const { deps, backend, events } = fakeDeps();
    const result = await createPlugin(deps).add(call('ADD', {}, [TCP_8080, UDP_8053]));
    expect(result).toMatchObject({ cniVersion: '1.0.0', ips: [{ address: '10.244.0.5/24' }, { address: 'fd00:244::5/64' }] });
    expect(backend.verbs()).toEqual(['add']);
    const plan = (backend.calls[0] as { plan: { families: Array<{ family: number; forwards: unknown[] }> } }).plan;
    expect(plan.families.map((f) => [f.family, f.forwards.length])).toEqual([[4, 2], [6, 2]]);
    expect(events.slice(0, 1)).toEqual(['lock ADD c1']);
    expect(events.indexOf('unlock')).toBeLessThan(events.indexOf('conntrack 8053 v4'));
    expect(events).toContain('conntrack 8053 v6');
    expect(events).not.toContain('conntrack 8080 v4');
    expect(events).toContain('route 10.244.0.5');
    expect(events).toContain('route_localnet cni0');
  });

  it('passes the prevResult on without touching the backend when there are no mappings', async () => {
    const { deps, backend, events } = fakeDeps();
    const result = await createPlugin(deps).add(call('ADD', {}, []));
    expect(result).toHaveProperty('ips');
    expect(backend.calls).toEqual([]);
    expect(events).toEqual([]);
  });

  it('refuses to run unchained (no prevResult, code 7) and rejects bad mappings before any change', async () => {
    const { deps, backend } = fakeDeps();
    const unchained = await failure(createPlugin(deps).add(call('ADD', {}, [TCP_8080], false)));
    expect(unchained).toBeInstanceOf(CniError);
    expect(unchained?.code).toBe(7);
    expect(unchained?.message).toBe('must be called as chained plugin');
    const bad = await failure(createPlugin(deps).add(call('ADD', {}, [{ hostPort: 0, containerPort: 1 }])));
    expect(bad?.code).toBe(7);
    expect(bad?.message).toContain('hostPort');
    expect(backend.calls).toEqual([]);
  });

  it('turns a lock timeout into code 11 naming the holder, with nothing applied', async () => {
    const holder = { pid: 4242, what: 'DEL other', since: '2026-12-01T00:00:00.000Z' };
    const { deps, backend } = fakeDeps({
      withLock: async () => {
        throw new LockTimeoutError(60_000, holder, '\0cni-portmap.lock');
      },
    });
    const err = await failure(createPlugin(deps).add(call('ADD')));
    expect(err?.code).toBe(11);
    expect(err?.message).toContain('held by pid 4242 (DEL other');
    expect(err?.details).toContain('ss -xlp');
    expect(backend.calls).toEqual([]);
  });

  it('reports a failing backend as the call error, after releasing the lock', async () => {
    const backend = new FakeBackend('nftables');
    backend.failing.set('add', new CniError(999, 'nft failed'));
    const { deps, events } = fakeDeps({}, backend);
    const err = await failure(createPlugin(deps).add(call('ADD')));
    expect(err?.message).toBe('nft failed');
    expect(events.at(-1)).toBe('unlock');
    expect(events).not.toContain('route_localnet cni0');
  });
});

describe('DEL', () => {
  it('with mappings and a prevResult: the exact plan, then conntrack of its UDP ports', async () => {
    const { deps, backend, events } = fakeDeps();
    await createPlugin(deps).del(call('DEL', {}, [UDP_8053]));
    const d = backend.calls[0] as { verb: string; owner: { containerID: string }; plan?: unknown };
    expect(d.verb).toBe('del');
    expect(d.owner.containerID).toBe('c1');
    expect(d.plan).toBeDefined();
    expect(events).toEqual(['lock DEL c1', 'unlock', 'conntrack 8053 v4', 'conntrack 8053 v6']);
  });

  it('without mappings, or with an unusable prevResult: the owner only (the backend looks it up)', async () => {
    for (const c of [call('DEL', {}, []), call('DEL', { prevResult: { cniVersion: '1.0.0', ips: 'bad' } })]) {
      const { deps, backend } = fakeDeps();
      await createPlugin(deps).del(c);
      expect(backend.calls).toHaveLength(1);
      expect(backend.calls[0]).not.toHaveProperty('plan');
    }
  });
});

describe('CHECK', () => {
  it('checks the plan, and fails when route_localnet is off where localhost forwarding needs it', async () => {
    const { deps, backend } = fakeDeps();
    await createPlugin(deps).check(call('CHECK'));
    expect(backend.verbs()).toEqual(['check']);
    const off = fakeDeps({ readRouteLocalnet: async () => false });
    const err = await failure(createPlugin(off.deps).check(call('CHECK')));
    expect(err?.message).toBe('route_localnet is off on cni0');
  });

  it('needs a prevResult', async () => {
    const err = await failure(createPlugin(fakeDeps().deps).check(call('CHECK', {}, [TCP_8080], false)));
    expect(err?.message).toBe('Required prevResult missing');
  });
});

describe('GC', () => {
  it('hands the backend its network, the valid attachments and the node-wide settings, under the lock', async () => {
    const { deps, backend, events } = fakeDeps();
    const valid = [{ containerID: 'c1', ifname: 'eth0' }];
    await createPlugin(deps).gc(call('GC', { cniVersion: '1.1.0', 'cni.dev/valid-attachments': valid, afterServices: true }, [], false));
    expect(backend.calls).toEqual([{ verb: 'gc', scope: { network: 'net', attachments: valid, settings: { afterServices: true, serviceCIDRs: [] } } }]);
    expect(events).toEqual(['lock GC', 'unlock']);
  });
});

describe('STATUS', () => {
  it('maps an unusable backend to code 50 and keeps configuration errors as code 7', async () => {
    const cases: Array<[Error, number]> = [
      [new Error('neither nft nor iptables-restore is on PATH'), 50],
      [new CniError(50, 'no nft', 'install nftables'), 50],
      [new CniError(7, 'nftables backend was requested but configuration contains iptables-specific options'), 7],
    ];
    for (const [thrown, code] of cases) {
      const { deps } = fakeDeps({ backendFor: async () => Promise.reject(thrown) });
      const err = await failure(createPlugin(deps).status(call('STATUS', { cniVersion: '1.1.0' }, [], false)));
      expect(err?.code).toBe(code);
      expect(err?.message).toBe(thrown.message);
    }
  });

  it('asks the backend whether it can serve ADD', async () => {
    const { deps, backend } = fakeDeps();
    await createPlugin(deps).status(call('STATUS', { cniVersion: '1.1.0' }, [], false));
    expect(backend.verbs()).toEqual(['status']);
  });
});

describe('attachment records (issue #13)', () => {
  const fresh = () => {
    const dir = mkdtempSync(join(RECORDS, 'r-'));
    const store = new RecordStore(dir);
    return { store, ...fakeDeps({ records: () => store }) };
  };
  const ids = (store: RecordStore) => store.list().records.map((r) => r.record.containerID).sort();

  it('ADD records what it applied (after the backend succeeded); a failed ADD records nothing', async () => {
    const { deps, store, backend } = fresh();
    await createPlugin(deps).add(call('ADD', {}, [TCP_8080]));
    expect(store.list().records.map((r) => [r.record.containerID, r.record.backend, r.record.netns.path])).toEqual([['c1', 'nftables', '/var/run/netns/p']]);
    expect(typeof backend.heal).toBe('function');
    const failing = fresh();
    failing.backend.failing.set('add', new Error('nft failed'));
    await failure(createPlugin(failing.deps).add(call('ADD', {}, [TCP_8080])));
    expect(ids(failing.store)).toEqual([]);
  });

  it('DEL removes the record before it touches the firewall; GC prunes the records of invalid attachments', async () => {
    const { deps, store, backend } = fresh();
    const plugin = createPlugin(deps);
    await plugin.add(call('ADD', {}, [TCP_8080]));
    await plugin.add({ ...call('ADD', {}, [UDP_8053]), args: { ...call('ADD').args, containerId: 'c2' } });
    expect(ids(store)).toEqual(['c1', 'c2']);
    backend.failing.set('del', new Error('nft failed'));
    await failure(plugin.del(call('DEL', {}, [TCP_8080])));
    expect(ids(store)).toEqual(['c2']);
    await plugin.gc(call('GC', { cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }, [], false));
    expect(ids(store)).toEqual([]);
  });

  it('CHECK runs under the lock (its self-healing may write); STATUS only when there are records', async () => {
    const { deps, events } = fresh();
    const plugin = createPlugin(deps);
    await plugin.status(call('STATUS', { cniVersion: '1.1.0' }, [], false));
    expect(events).toEqual([]);
    await plugin.add(call('ADD', {}, [TCP_8080]));
    events.length = 0;
    await plugin.check(call('CHECK', {}, [TCP_8080]));
    await plugin.status(call('STATUS', { cniVersion: '1.1.0' }, [], false));
    expect(events.filter((e) => e.startsWith('lock'))).toEqual(['lock CHECK c1', 'lock STATUS']);
  });
});
