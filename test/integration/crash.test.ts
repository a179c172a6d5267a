/**
 * Crash safety (issue 6, item 2). The plugin is SIGKILLed (its whole process group, nft children
 * included) at named points of ADD and DEL (PORTMAP_TEST_PAUSE_AT, src/host/testpoint.ts: before the
 * lock, holding the lock before the nft transaction, holding it after the transaction, after the lock
 * before route_localnet/conntrack, at the very end) and at random delays after spawn. After each kill:
 *   - the node's ruleset is exactly the old state or exactly the new one (never a mix),
 *   - the next call is not blocked by the dead holder's lock (it completes within a few seconds),
 *   - a retried ADD then DEL, or a GC, leaves nothing of the attachment.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LockTimeoutError, acquireLock } from '../../src/host/lock.js';
import { type Pod, TestBed, inNs, sh } from './harness.js';
import { executableUnderTest } from './standalone.js';

// The executable README installs, with no node on PATH (PORTMAP_TEST_EXECUTABLE=bundle: dist/portmap).
const exe = executableUnderTest();
afterAll(() => exe.remove());

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function start(ns: string, env: Record<string, string>, stdin: string): { child: ChildProcess; done: Promise<Outcome> } {
  const started = performance.now();
  // `ip netns exec` execs the plugin in place; detached puts it (and any nft it runs) in its own group.
  const child = spawn('ip', ['netns', 'exec', ns, exe.bin], {
    env: { PATH: exe.path, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout!.on('data', (b: Buffer) => out.push(b));
  child.stderr!.on('data', (b: Buffer) => err.push(b));
  child.stdin!.on('error', () => undefined);
  child.stdin!.end(stdin);
  const done = new Promise<Outcome>((resolve) => {
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started }));
  });
  return { child, done };
}

const killGroup = (child: ChildProcess): void => {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // Already gone.
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitForMarker(file: string, point: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // not yet
    }
    if (text.split('\n').some((l) => l.startsWith(`${point} `))) return;
    await sleep(10);
  }
  throw new Error(`the plugin never reached ${point}`);
}

/** Every firewall state of the namespace, counters zeroed (they move with traffic, not with us). */
async function firewallState(ns: string): Promise<string> {
  const parts: string[] = [];
  for (const cmd of [['nft', 'list', 'ruleset'], ['iptables-nft-save'], ['ip6tables-nft-save'], ['iptables-legacy-save'], ['ip6tables-legacy-save']]) {
    const r = await inNs(ns, cmd, { ok: [1, 2] });
    parts.push(`## ${cmd[0]}\n${r.stdout.split('\n').filter((l) => !l.startsWith('#')).join('\n')}`);
  }
  return parts.join('\n').replace(/^(:\S+ \S+) \[\d+:\d+\]$/gm, '$1 [0:0]').replace(/counter packets \d+ bytes \d+/g, 'counter');
}

/**
 * The part of a state that belongs to one address family: nft tables of family ip (ip6), inet ones in
 * both, and the iptables-save (ip6tables-save) outputs.
 */
function familyPart(state: string, family: 4 | 6): string {
  const out: string[] = [];
  for (const section of state.split(/^## /m)) {
    if (section.startsWith('nft')) {
      for (const table of section.split(/^(?=table )/m)) {
        if (table.startsWith(`table ${family === 4 ? 'ip' : 'ip6'} `) || table.startsWith('table inet ')) out.push(table);
      }
    } else if (section.startsWith(family === 4 ? 'iptables' : 'ip6tables')) out.push(section);
  }
  return out.join('\n');
}

/**
 * Old or new, never a mix. The iptables backend writes IPv4 and IPv6 with one restore each (the kernel
 * has no transaction across them), so there each family on its own must be old or new.
 */
function expectOldOrNew(backend: string, oldState: string, newState: string, s: string, what: string): void {
  if (backend === 'nftables') {
    expect([oldState, newState], `${what}: ${mixReport(oldState, newState, s)}`).toContain(s);
    return;
  }
  for (const f of [4, 6] as const) {
    expect([familyPart(oldState, f), familyPart(newState, f)], `${what}, IPv${f}: ${mixReport(oldState, newState, s)}`).toContain(familyPart(s, f));
  }
}

/** Which lines of the new state are present and which missing (a mix has both). */
function mixReport(oldState: string, newState: string, s: string): string {
  const lines = (t: string) => new Set(t.split('\n'));
  const o = lines(oldState);
  const now = lines(s);
  const added = [...lines(newState)].filter((l) => !o.has(l));
  return JSON.stringify({ present: added.filter((l) => now.has(l)), missing: added.filter((l) => !now.has(l)) });
}

async function backendWorks(backend: string): Promise<boolean> {
  const ns = `pmcrash${process.pid}${backend.slice(0, 2)}`;
  await sh(['ip', 'netns', 'add', ns]);
  try {
    const res = await inNs(ns, [exe.bin], {
      env: { PATH: exe.path, CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' },
      input: JSON.stringify({ cniVersion: '1.1.0', name: 'probe', type: 'portmap', backend }),
      ok: [1],
    });
    return res.code === 0;
  } finally {
    await sh(['ip', 'netns', 'del', ns], { ok: [1] });
  }
}

for (const backend of ['nftables', 'iptables'] as const)
describe(`crash safety (${backend}, ${exe.label}): SIGKILL at any point of ADD and DEL`, () => {
  let ready = true;
  let bed: TestBed;
  let podA: Pod;
  let dir: string;
  let oldState: string;
  let newState: string;
  const B = { id: 'crashb', ip: '10.244.0.200' };

  const env = (command: string, extra: Record<string, string> = {}) => ({
    CNI_COMMAND: command,
    CNI_CONTAINERID: B.id,
    CNI_NETNS: '/var/run/netns/gone',
    CNI_IFNAME: 'eth0',
    CNI_PATH: bed.binDir,
    ...extra,
  });
  const config = (version = '1.0.0', extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      cniVersion: version,
      name: bed.networkName,
      type: 'portmap',
      backend,
      dataDir: bed.dataDir,
      runtimeConfig: {
        portMappings: [
          { hostPort: 9001, containerPort: 80, protocol: 'tcp' },
          { hostPort: 9002, containerPort: 53, protocol: 'udp' },
          { hostPort: 9003, containerPort: 81, protocol: 'tcp', hostIP: '192.0.2.10' },
        ],
      },
      // Dual-stack: one attachment's IPv4 and IPv6 rules must appear and disappear together.
      prevResult: { cniVersion: '1.0.0', ips: [{ address: `${B.ip}/24`, gateway: '10.244.0.1' }, { address: 'fd00:244::c8/64', gateway: 'fd00:244::1' }] },
      ...extra,
    });
  const state = () => firewallState(bed.node);
  const call = async (command: string, stdin = config(), extra: Record<string, string> = {}) => {
    const { done } = start(bed.node, env(command, extra), stdin);
    return done;
  };
  const gc = () =>
    call('GC', JSON.stringify({ cniVersion: '1.1.0', name: bed.networkName, type: 'portmap', backend, 'cni.dev/valid-attachments': [{ containerID: podA.id, ifname: 'eth0' }] }));

  /** Starts a call that pauses at `point`, waits until it is there, and SIGKILLs it. */
  async function killAt(command: string, point: string): Promise<void> {
    const marker = join(dir, `${command}-${point.replace(':', '_')}-${Date.now()}`);
    writeFileSync(marker, '');
    const { child, done } = start(bed.node, env(command, { PORTMAP_TEST_PAUSE_AT: point, PORTMAP_TEST_MARKER: marker }), config());
    await waitForMarker(marker, point);
    killGroup(child);
    const out = await done;
    expect(out.code).toBeNull(); // killed, not exited
  }

  /** The next call must get the lock at once: the kernel freed the dead holder's socket. */
  async function expectCleanAfterDel(): Promise<void> {
    const del = await call('DEL');
    expect(del.code, del.stdout + del.stderr).toBe(0);
    expect(del.ms).toBeLessThan(5_000);
    expect(await state()).toBe(oldState);
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portmap-crash-'));
    if (backend === 'iptables') ready = await backendWorks('iptables');
    if (!ready) return;
    bed = await TestBed.create({ plugin: exe.bin, portmap: { backend }, env: { PATH: exe.path } });
    podA = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    oldState = await state();
    const add = await call('ADD');
    expect(add.code, add.stdout).toBe(0);
    newState = await state();
    expect(newState).not.toBe(oldState);
    expect((await call('DEL')).code).toBe(0);
    expect(await state()).toBe(oldState);
  }, 120_000);
  afterAll(async () => {
    await bed?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach((ctx) => {
    if (!ready) ctx.skip();
  });

  const addPoints: Array<[string, 'old' | 'new']> = [
    ['add:before-lock', 'old'],
    ['add:locked', 'old'],
    ['add:applied', 'new'],
    ['add:unlocked', 'new'],
    ['add:done', 'new'],
  ];
  for (const [point, expected] of addPoints) {
    it(`ADD killed at ${point}: ruleset is the ${expected} state; a retried ADD then DEL is clean`, async () => {
      await killAt('ADD', point);
      expect(await state()).toBe(expected === 'old' ? oldState : newState);
      const retry = await call('ADD');
      expect(retry.code, retry.stdout).toBe(0);
      expect(retry.ms).toBeLessThan(5_000);
      expect(await state()).toBe(newState);
      expect((await inNs(bed.node, ['sysctl', '-n', 'net.ipv4.conf.cni0.route_localnet'])).stdout.trim()).toBe('1');
      await expectCleanAfterDel();
    });
    it(`ADD killed at ${point}: GC alone cleans the node`, async () => {
      await killAt('ADD', point);
      expect(await state()).toBe(expected === 'old' ? oldState : newState);
      const res = await gc();
      expect(res.code, res.stdout).toBe(0);
      expect(res.ms).toBeLessThan(5_000);
      expect(await state()).toBe(oldState);
    });
  }

  for (const [point, expected] of [
    ['del:before-lock', 'new'],
    ['del:locked', 'new'],
    ['del:applied', 'old'],
  ] as const) {
    it(`DEL killed at ${point}: ruleset is the ${expected} state; the next DEL is clean`, async () => {
      expect((await call('ADD')).code).toBe(0);
      await killAt('DEL', point);
      expect(await state()).toBe(expected === 'old' ? oldState : newState);
      await expectCleanAfterDel();
    });
  }

  it('a call waiting for a holder that gets SIGKILLed proceeds at once', async () => {
    const marker = join(dir, 'holder');
    writeFileSync(marker, '');
    const holder = start(bed.node, env('ADD', { PORTMAP_TEST_PAUSE_AT: 'add:locked', PORTMAP_TEST_MARKER: marker }), config());
    await waitForMarker(marker, 'add:locked');
    const waiter = call('DEL');
    await sleep(700);
    const killedAt = performance.now();
    killGroup(holder.child);
    await holder.done;
    const del = await waiter;
    expect(del.code, del.stdout).toBe(0);
    expect(performance.now() - killedAt).toBeLessThan(3_000);
    expect(del.ms).toBeGreaterThan(700); // it really waited for the lock
    expect(await state()).toBe(oldState);
  });

  it('random SIGKILLs during ADD leave the old or the new state, never a mix', async () => {
    const seen = { old: 0, new: 0, split: 0 };
    // Kill times spread over 0 .. 1.5x the length of an ADD measured here, however fast or slow it is.
    const added = await call('ADD');
    expect(added.code).toBe(0);
    await expectCleanAfterDel();
    const killAfter = (i: number) => Math.round((((i * 7) % 24) / 23) * 1.5 * added.ms);
    for (let i = 0; i < 24; i++) {
      const { child, done } = start(bed.node, env('ADD'), config());
      await sleep(killAfter(i));
      killGroup(child);
      await done;
      const s = await state();
      expectOldOrNew(backend, oldState, newState, s, `a mix after a kill at ${killAfter(i)} ms`);
      if (s === oldState || s === newState) seen[s === oldState ? 'old' : 'new']++;
      else seen.split++;
      // Alternate the ways back to a clean node.
      if (i % 3 === 0) {
        expect((await gc()).code).toBe(0);
        expect(await state()).toBe(oldState);
      } else if (i % 3 === 1) {
        expect((await call('ADD')).code).toBe(0);
        expect(await state()).toBe(newState);
        await expectCleanAfterDel();
      } else {
        await expectCleanAfterDel();
      }
    }
    // The delays span the whole call: some kills landed before the commit, some after.
    expect(seen.old).toBeGreaterThan(0);
    expect(seen.new).toBeGreaterThan(0);
    if (backend === 'nftables') expect(seen.split).toBe(0);
    else if (seen.split > 0) console.warn(`iptables: ${seen.split} of 24 killed ADDs left IPv4 and IPv6 in different states (each family atomic)`);
  }, 120_000);

  it('random SIGKILLs during DEL leave the old or the new state, never a mix', async () => {
    const seen = { old: 0, new: 0, split: 0 };
    for (let i = 0; i < 16; i++) {
      expect((await call('ADD')).code).toBe(0);
      const { child, done } = start(bed.node, env('DEL'), config());
      await sleep(40 + ((i * 53) % 300));
      killGroup(child);
      await done;
      const s = await state();
      expectOldOrNew(backend, oldState, newState, s, `a mix after a DEL killed at ${40 + ((i * 53) % 300)} ms`);
      seen[s === oldState ? 'old' : s === newState ? 'new' : 'split']++;
      await expectCleanAfterDel();
    }
    expect(seen.old + seen.new + seen.split).toBe(16);
    if (backend === 'nftables') expect(seen.split).toBe(0);
  }, 120_000);

  it('the first pod still forwards after all of it', async () => {
    await bed.serve(podA.netns, 'crash-a', 80);
    expect(await bed.request(bed.client, 'tcp', '192.0.2.1', 8080)).toMatch(/^crash-a /);
  });
});

describe('lock errors name the holder', () => {
  it('a timed-out waiter is told which pid holds which lock, and how to look', async () => {
    const name = `\0cni-portmap-test-${process.pid}.lock`;
    const lock = await acquireLock('ADD holder-container', 5_000, name);
    try {
      const err = await acquireLock('DEL other', 600, name).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LockTimeoutError);
      const e = err as LockTimeoutError;
      expect(e.holder?.pid).toBe(process.pid);
      expect(e.message).toContain(`held by pid ${process.pid} (ADD holder-container`);
      expect(e.hint).toMatch(/ss -xlp/);
    } finally {
      await lock.release();
    }
    // Released: the next acquire is immediate.
    const again = await acquireLock('again', 1_000, name);
    await again.release();
  });
});
