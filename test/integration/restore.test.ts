/**
 * hostPorts survive a firewall reload (issue #13), with the real kernel and real traffic: for the
 * nftables backend and both iptables flavours, the node's rules are wiped (`nft flush ruleset`,
 * `iptables -t nat -F`, deletion of just our table or chains) under a live pod, and healed (a) by the
 * next ADD of another pod, (b) by `portmap restore`, (c) by `portmap watch` within a second. Checked by
 * traffic: TCP and UDP, IPv4 and IPv6, a hostIP mapping and node -> 127.0.0.1.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_V4, NODE_V4_B, NODE_V6, PLUGIN, type Pod, REFERENCE_PORTMAP, TestBed, inNs, reply, sh } from './harness.js';

interface Variant {
  label: string;
  backend: 'nftables' | 'iptables';
  legacy?: boolean;
  /** Ways to wipe our rules, each as commands run in the node namespace. */
  wipes: Record<string, Wipe[]>;
  /**
   * Wipes the next ADD cannot see: an nftables ADD that finds its ready mark in place (a flushed or
   * deleted chain keeps it, `nft flush table` empties the map it adds the mark back to) is not slowed
   * down to look; CHECK, GC, STATUS, restore and watch find them.
   */
  unseenByAdd?: string[];
}

type Wipe = string[] | { args: string[]; input: string };

/** Our shared chain and the jumps to it, deleted in one transaction (portmap watch is faster than a script). */
const iptablesChains = (ipt: string): Wipe[] => [{
  args: [`${ipt}-restore`, '--noflush'],
  input: ['*nat', ...['PREROUTING', 'OUTPUT'].map((c) => `-D ${c} -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT`),
    '-F CNI-HOSTPORT-DNAT', '-X CNI-HOSTPORT-DNAT', 'COMMIT', ''].join('\n'),
}];

const VARIANTS: Variant[] = [
  {
    label: 'nftables',
    backend: 'nftables',
    wipes: {
      'nft flush ruleset': [['nft', 'flush', 'ruleset']],
      'nft delete table inet cni_portmap': [['nft', 'delete', 'table', 'inet', 'cni_portmap']],
      'nft flush table inet cni_portmap': [['nft', 'flush', 'table', 'inet', 'cni_portmap']],
      'deleting just our base chains': ['prerouting', 'output'].flatMap((c) => [
        ['nft', 'flush', 'chain', 'inet', 'cni_portmap', c],
        ['nft', 'delete', 'chain', 'inet', 'cni_portmap', c],
      ]),
    },
    unseenByAdd: ['nft flush table inet cni_portmap', 'deleting just our base chains'],
  },
  {
    label: 'iptables, nf_tables flavour',
    backend: 'iptables',
    wipes: {
      'nft flush ruleset': [['nft', 'flush', 'ruleset']],
      'iptables -t nat -F': [['iptables', '-t', 'nat', '-F'], ['ip6tables', '-t', 'nat', '-F']],
      'deleting just our chains and jumps': [...iptablesChains('iptables'), ...iptablesChains('ip6tables')],
    },
  },
  {
    label: 'iptables, legacy flavour',
    backend: 'iptables',
    legacy: true,
    wipes: {
      'iptables-legacy -t nat -F': [['iptables-legacy', '-t', 'nat', '-F'], ['ip6tables-legacy', '-t', 'nat', '-F']],
      'deleting just our chains and jumps': [...iptablesChains('iptables-legacy'), ...iptablesChains('ip6tables-legacy')],
    },
  },
];

const MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 8053, containerPort: 53, protocol: 'udp' },
  { hostPort: 8081, containerPort: 81, protocol: 'tcp', hostIP: NODE_V4_B },
];

/** Every kind of forward of the pod: TCP/UDP, IPv4/IPv6, hostIP, node -> 127.0.0.1. */
async function forwards(bed: TestBed, tag: string): Promise<Record<string, string | undefined>> {
  const [v4, v6, udp, hostIP, local] = await Promise.all([
    bed.request(bed.client, 'tcp', NODE_V4, 8080),
    bed.request(bed.client, 'tcp', NODE_V6, 8080),
    bed.request(bed.client, 'udp', NODE_V4, 8053),
    bed.request(bed.client, 'tcp', NODE_V4_B, 8081),
    bed.request(bed.node, 'tcp', '127.0.0.1', 8080),
  ]);
  const t = (r: string | undefined) => (reply(r).tag === tag ? 'ok' : (r ?? 'no answer'));
  return { v4: t(v4), v6: t(v6), udp: t(udp), hostIP: t(hostIP), localhost: t(local) };
}
const ALL_OK = { v4: 'ok', v6: 'ok', udp: 'ok', hostIP: 'ok', localhost: 'ok' };

const dead = async (bed: TestBed) => expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 700 })).toBeUndefined();

async function wipe(bed: TestBed, cmds: Wipe[]): Promise<void> {
  for (const c of cmds) {
    if (Array.isArray(c)) await inNs(bed.node, c);
    else await inNs(bed.node, c.args, { input: c.input });
  }
}

const restore = async (bed: TestBed, ...extra: string[]) => {
  const res = await inNs(bed.node, [PLUGIN, 'restore', '--json', '--data-dir', bed.dataDir, '--cni-cache-dir', join(bed.cacheDir, 'results'), ...extra], { ok: [1] });
  return { code: res.code, report: JSON.parse(res.stdout) as {
    restored: Array<{ name: string; adopted?: boolean }>; intact: Array<{ name: string }>;
    skipped: Array<{ name: string; reason: string; removed?: boolean }>; backends: Array<{ damage: string[] }>;
  } };
};

/** `portmap watch` in the node namespace; resolves once it follows. */
async function startWatch(bed: TestBed, extra: string[] = []): Promise<{ child: ChildProcess; log: () => string }> {
  const child = spawn('ip', ['netns', 'exec', bed.node, PLUGIN, 'watch', '--data-dir', bed.dataDir, '--no-adopt', ...extra], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, PORTMAP_LOG: 'debug' },
  });
  let text = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => (text += d));
  const t0 = Date.now();
  while (!/start: /.test(text)) {
    if (Date.now() - t0 > 10_000) throw new Error(`portmap watch did not start: ${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, log: () => text };
}

/** Milliseconds until the pod answers on 8080 again (polling), or undefined after `limitMs`. */
async function healedWithin(bed: TestBed, tag: string, limitMs: number): Promise<number | undefined> {
  const t0 = Date.now();
  while (Date.now() - t0 < limitMs) {
    if (reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 150 })).tag === tag) return Date.now() - t0;
  }
  return undefined;
}

for (const v of VARIANTS) {
  describe(`hostPorts survive a firewall reload: ${v.label}`, () => {
    let bed: TestBed;
    let pod: Pod;
    let extra = 0;

    beforeAll(async () => {
      bed = await TestBed.create({ portmap: { backend: v.backend } });
      if (v.legacy) {
        // kube-proxy's rules in iptables-legacy make the backend choose that flavour (flavour.ts).
        for (const ipt of ['iptables-legacy', 'ip6tables-legacy']) {
          await inNs(bed.node, [ipt, '-t', 'nat', '-N', 'KUBE-SERVICES']);
          await inNs(bed.node, [ipt, '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'KUBE-SERVICES']);
        }
      }
      pod = await bed.addPod(MAPPINGS);
      for (const port of [80, 53, 81]) await bed.serve(pod.netns, 'a', port);
      expect(await forwards(bed, 'a')).toEqual(ALL_OK);
    });
    afterAll(() => bed?.destroy());

    for (const [name, cmds] of Object.entries(v.wipes)) {
      it.skipIf(v.unseenByAdd?.includes(name))(`after ${name}: the next ADD of another pod restores the live pod's hostPorts`, async () => {
        await wipe(bed, cmds);
        await dead(bed);
        await bed.addPod([{ hostPort: 9100 + extra++, containerPort: 80, protocol: 'tcp' }]);
        expect(await forwards(bed, 'a')).toEqual(ALL_OK);
        expect((await bed.checkPod(pod)).code).toBe(0);
      });

      it(`after ${name}: portmap restore restores them and says so; a second restore finds them intact`, async () => {
        await wipe(bed, cmds);
        await dead(bed);
        const first = await restore(bed);
        expect(first.code).toBe(0);
        expect(first.report.restored.map((r) => r.name)).toContain(`testnet/${pod.id}/eth0`);
        expect(first.report.backends[0]!.damage.length).toBeGreaterThan(0);
        expect(await forwards(bed, 'a')).toEqual(ALL_OK);
        const again = await restore(bed);
        expect(again.report.restored).toEqual([]);
        expect(again.report.intact.map((r) => r.name)).toContain(`testnet/${pod.id}/eth0`);
      });

      // The legacy flavour emits no events: watch checks it every --legacy-interval seconds (a slow check).
      it(`after ${name}: portmap watch restores them within ${v.legacy ? 'its legacy interval and a second' : 'a second'}`, async () => {
        const interval = v.legacy ? ['--legacy-interval', '0.3'] : [];
        const watch = await startWatch(bed, interval);
        try {
          await wipe(bed, cmds);
          const ms = await healedWithin(bed, 'a', 3000);
          expect(ms, watch.log()).toBeDefined();
          expect(ms!).toBeLessThan(v.legacy ? 2000 : 1000);
          expect(await forwards(bed, 'a')).toEqual(ALL_OK);
          expect(watch.log()).toMatch(/restored 1 attachment|restored \d+ attachment/);
        } finally {
          watch.child.kill('SIGTERM');
          const code = await new Promise<number | null>((r) => watch.child.once('exit', r));
          expect(code).toBe(0);
        }
      });
    }

    it('CHECK, DEL, GC and STATUS heal too; records of dead pods are removed, never restored', async () => {
      const gone = await bed.addPod([{ hostPort: 9300, containerPort: 80, protocol: 'tcp' }]);
      const [first] = Object.values(v.wipes);
      // The pod's namespace disappears without a DEL (a crashed runtime, a reboot).
      await sh(['ip', 'netns', 'del', gone.netns]);
      await wipe(bed, first!);
      await dead(bed);
      expect((await bed.checkPod(pod)).code).toBe(0); // CHECK restored before checking
      expect(await forwards(bed, 'a')).toEqual(ALL_OK);
      const state = v.backend === 'nftables' ? await bed.ruleset() : (await inNs(bed.node, [v.legacy ? 'iptables-legacy-save' : 'iptables-save', '-t', 'nat'])).stdout;
      expect(state).not.toContain(gone.ip4!);
      const r = await restore(bed);
      expect(r.report.restored).toEqual([]);
      const records = readdirSync(join(bed.dataDir, readdirSync(bed.dataDir)[0]!));
      expect(records.length).toBeGreaterThan(0);
      // STATUS heals
      await wipe(bed, first!);
      const status = await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({}, '1.1.0'));
      expect(status.code).toBe(0);
      expect(await forwards(bed, 'a')).toEqual(ALL_OK);
    });

    it('portmap doctor names the pod whose hostPorts are broken, with portmap restore as the fix', async () => {
      const [first] = Object.values(v.wipes);
      await wipe(bed, first!);
      const res = await inNs(bed.node, [PLUGIN, 'doctor', '--json', '--data-dir', bed.dataDir, '--cni-cache-dir', join(bed.cacheDir, 'results'), '--cni-conf-dir', bed.dir], { ok: [1] });
      const findings = (JSON.parse(res.stdout) as { findings: Array<{ id: string; message: string; fix: string }> }).findings;
      const broken = findings.filter((f) => f.id === 'hostport-not-forwarded');
      expect(broken.some((f) => f.message.includes(pod.id) && /portmap restore/.test(f.fix))).toBe(true);
      await restore(bed);
      const after = await inNs(bed.node, [PLUGIN, 'doctor', '--json', '--data-dir', bed.dataDir, '--cni-cache-dir', join(bed.cacheDir, 'results'), '--cni-conf-dir', bed.dir], { ok: [1] });
      expect((JSON.parse(after.stdout) as { findings: Array<{ id: string }> }).findings.filter((f) => f.id === 'hostport-not-forwarded')).toEqual([]);
    });
  });
}

describe('restore: concurrency, crashes, adoption, node namespaces', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('runs correctly beside 50 concurrent ADDs and DELs', async () => {
    const keep = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(keep.netns, 'keep', 80);
    await inNs(bed.node, ['nft', 'flush', 'ruleset']);
    const churn = Array.from({ length: 25 }, async (_, i) => {
      const p = await bed.addPod([{ hostPort: 10000 + i, containerPort: 80, protocol: 'tcp' }]);
      if (i % 2 === 0) await bed.delPod(p);
      return { p, deleted: i % 2 === 0 };
    });
    const restores = Array.from({ length: 5 }, () => restore(bed));
    const pods = await Promise.all(churn);
    for (const r of await Promise.all(restores)) expect(r.code).toBe(0);
    const final = await restore(bed);
    expect(final.code).toBe(0);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('keep');
    const ruleset = await bed.ruleset();
    for (const { p, deleted } of pods) {
      if (deleted) expect(ruleset).not.toContain(`/${p.id}/`);
      else expect(ruleset).toContain(`/${p.id}/`);
    }
    const recorded = readdirSync(join(bed.dataDir, readdirSync(bed.dataDir)[0]!)).filter((n) => n.endsWith('.json'));
    expect(recorded).toHaveLength(1 + pods.filter((x) => !x.deleted).length);
  });

  it('a SIGKILL during a restore leaves the old state or the new one, and the next call completes it', async () => {
    const marker = join(bed.dir, 'marker');
    for (let i = 0; i < 3; i++) {
      await inNs(bed.node, ['nft', 'flush', 'ruleset']);
      writeFileSync(marker, '');
      // Paused at the testpoint (i = 0: before its transaction), or killed a few ms after it (during or after).
      const env = { ...process.env, PORTMAP_TEST_PAUSE_AT: 'restore:apply', PORTMAP_TEST_MARKER: marker, PORTMAP_TEST_PAUSE_MS: String(i === 0 ? 60_000 : 0) };
      const child = spawn('ip', ['netns', 'exec', bed.node, PLUGIN, 'restore', '--data-dir', bed.dataDir, '--no-adopt'], { env, stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      let pid: number | undefined;
      for (const t0 = Date.now(); pid === undefined && Date.now() - t0 < 10_000; ) {
        pid = Number(/restore:apply (\d+)/.exec(readFileSync(marker, 'utf8'))?.[1]) || undefined;
        if (pid === undefined) await new Promise((r) => setTimeout(r, 5));
      }
      expect(pid).toBeDefined();
      if (i > 0) await new Promise((r) => setTimeout(r, (i - 1) * 15));
      try {
        process.kill(pid!, 'SIGKILL'); // the plugin itself (ip netns exec may run it as its child)
      } catch {
        // it had finished already: the new state
      }
      await exited;
      const tables = (await inNs(bed.node, ['nft', 'list', 'tables'])).stdout;
      if (i === 0) expect(tables).not.toContain('cni_portmap'); // killed before its transaction: the old state
      if (tables.includes('cni_portmap')) expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('keep');
      const r = await restore(bed);
      expect(r.code).toBe(0);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('keep');
    }
  });

  it('two node namespaces sharing a dataDir never see each other\'s records', async () => {
    const shared = mkdtempSync(join(tmpdir(), 'pm-shared-'));
    const a = await TestBed.create({ portmap: { backend: 'nftables' }, dataDir: shared });
    const b = await TestBed.create({ portmap: { backend: 'nftables' }, dataDir: shared });
    try {
      const pa = await a.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      const pb = await b.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      await b.serve(pb.netns, 'b', 80);
      expect(readdirSync(shared)).toHaveLength(2); // one scope directory per node namespace
      await inNs(b.node, ['nft', 'flush', 'ruleset']);
      const rb = await restore(b);
      expect(rb.report.restored.map((x) => x.name)).toEqual([`testnet/${pb.id}/eth0`]);
      expect(await b.ruleset()).not.toContain(pa.id);
      expect(await a.ruleset()).toContain(pa.id);
      expect(reply(await b.request(b.client, 'tcp', NODE_V4, 8080)).tag).toBe('b');
    } finally {
      await a.destroy();
      await b.destroy();
      rmSync(shared, { recursive: true, force: true });
    }
  });

  it('adopts pods started under the reference plugin from the libcni cache', async () => {
    const ref = await TestBed.create({ plugin: REFERENCE_PORTMAP });
    try {
      const p = await ref.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      await ref.serve(p.netns, 'ref', 80);
      expect(reply(await ref.request(ref.client, 'tcp', NODE_V4, 8080)).tag).toBe('ref');
      await inNs(ref.node, ['nft', 'flush', 'ruleset']);
      await dead(ref);
      const r = await restore(ref);
      expect(r.code).toBe(0);
      expect(r.report.restored).toEqual([expect.objectContaining({ name: `testnet/${p.id}/eth0`, adopted: true })]);
      expect(reply(await ref.request(ref.client, 'tcp', NODE_V4, 8080)).tag).toBe('ref');
    } finally {
      await ref.destroy();
    }
  });
});
