/**
 * Concurrency stress (issue 6, item 3), for each backend: 200 ADD and DEL calls (plus a few calls with
 * bad input) interleaved from 12 parallel plugin processes, as a runtime would run them (never two
 * calls for the same attachment at once; DEL of an attachment only after its ADD). The attachments'
 * addresses all live in one real "sink" pod namespace (extra addresses on its eth0), so every one of
 * them can be checked with real traffic. Afterwards:
 *   - every valid call succeeded and every bad one failed with its own error (code 7),
 *   - the node's rules name exactly the surviving attachments (address and host port), nothing of a
 *     deleted one remains,
 *   - every surviving attachment forwards (client -> node:hostPort -> its address), a sample of the
 *     deleted ones does not, and the real pods added through libcni during the storm behave the same.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pod, TestBed, inNs, reply, sh } from './harness.js';
import { executableUnderTest } from './standalone.js';

// The executable README installs, with no node on PATH (PORTMAP_TEST_EXECUTABLE=bundle: dist/portmap).
const exe = executableUnderTest();
afterAll(() => exe.remove());

const ATTACHMENTS = 120; // 120 ADDs + 80 DELs = 200 calls
const WORKERS = 12;
const BAD_CALLS = 10;

interface Outcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runPlugin(ns: string, env: Record<string, string>, stdin: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, exe.bin], { env: { PATH: exe.path, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.stdin.on('error', () => undefined);
    child.on('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(stdin);
  });
}

async function backendWorks(backend: string): Promise<boolean> {
  const ns = `pmprobe${process.pid}${backend.slice(0, 2)}`;
  await sh(['ip', 'netns', 'add', ns]);
  try {
    const res = await runPlugin(ns, { CNI_COMMAND: 'STATUS', CNI_PATH: '/usr/lib/cni' }, JSON.stringify({ cniVersion: '1.1.0', name: 'probe', type: 'portmap', backend }));
    return res.code === 0;
  } finally {
    await sh(['ip', 'netns', 'del', ns], { ok: [1] });
  }
}

const ipOf = (i: number) => `10.244.0.${100 + i}`;
const portOf = (i: number) => 20000 + i;
const deleted = (i: number) => i % 3 !== 0;

/** Whole-token search for an address or a port in rule text (10.244.0.10 must not match 10.244.0.100). */
const mentions = (text: string, token: string) => new RegExp(`(^|[^0-9.])${token.replace(/\./g, '\\.')}(?![0-9])`, 'm').test(text);

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`concurrency stress (${backend}, ${exe.label})`, () => {
    let bed: TestBed;
    let sink: Pod;
    let ready = true;
    const failures: string[] = [];
    const realPods: Array<{ pod: Pod; keep: boolean }> = [];

    const env = (command: string, i: number) => ({
      CNI_COMMAND: command,
      CNI_CONTAINERID: `stress${i}`,
      CNI_NETNS: '/var/run/netns/gone',
      CNI_IFNAME: 'eth0',
      CNI_PATH: bed.binDir,
    });
    const config = (i: number, hostPort = portOf(i)) =>
      JSON.stringify({
        cniVersion: '1.0.0',
        name: bed.networkName,
        type: 'portmap',
        backend,
        dataDir: bed.dataDir,
        runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
        prevResult: { cniVersion: '1.0.0', ips: [{ address: `${ipOf(i)}/24`, gateway: '10.244.0.1' }] },
      });

    beforeAll(async () => {
      if (backend === 'iptables') ready = await backendWorks('iptables');
      if (!ready) return;
      bed = await TestBed.create({ plugin: exe.bin, portmap: { backend }, env: { PATH: exe.path } });
      sink = await bed.addPod([]);
      const batch = Array.from({ length: ATTACHMENTS }, (_, i) => `addr add ${ipOf(i)}/24 dev eth0`).join('\n');
      await inNs(sink.netns, ['ip', '-batch', '-'], { input: `${batch}\n` });
      await bed.serve(sink.netns, 'sink', 80);
    }, 120_000);
    afterAll(() => bed?.destroy());

    it(`200 ADD/DEL calls from ${WORKERS} parallel processes all succeed; bad calls fail with their own error`, async (ctx) => {
      if (!ready) ctx.skip();
      type Task = { kind: 'ADD' | 'DEL' | 'BAD'; i: number };
      const queue: Task[] = Array.from({ length: ATTACHMENTS }, (_, i) => ({ kind: 'ADD' as const, i }));
      for (let k = 0; k < BAD_CALLS; k++) queue.splice(k * 12, 0, { kind: 'BAD', i: 1000 + k });
      let calls = 0;
      const worker = async (): Promise<void> => {
        for (let task = queue.shift(); task; task = queue.shift()) {
          if (task.kind === 'BAD') {
            // Invalid input (port 0) in the middle of the storm: its own error, nothing else.
            const out = await runPlugin(bed.node, env('ADD', task.i), config(task.i, 0));
            const code = out.code === 1 ? (JSON.parse(out.stdout) as { code: number }).code : undefined;
            if (code !== 7) failures.push(`bad ADD ${task.i}: exit ${out.code} ${out.stdout}`);
            continue;
          }
          calls++;
          const out = await runPlugin(bed.node, env(task.kind, task.i), config(task.i));
          if (out.code !== 0) failures.push(`${task.kind} ${task.i}: exit ${out.code} ${out.stdout} ${out.stderr}`);
          // Its DEL becomes runnable now; put it at a random place so ADDs and DELs interleave.
          if (task.kind === 'ADD' && deleted(task.i)) queue.splice(Math.floor(Math.random() * (queue.length + 1)), 0, { kind: 'DEL', i: task.i });
        }
      };
      // Real pods through libcni during the storm: two stay, two go.
      const libcni = (async () => {
        for (let k = 0; k < 4; k++) {
          const pod = await bed.addPod([{ hostPort: 18000 + k, containerPort: 80, protocol: 'tcp' }]);
          realPods.push({ pod, keep: k % 2 === 0 });
          if (k % 2 === 1) {
            const del = await bed.delPod(pod);
            if (del.code !== 0) failures.push(`libcni DEL ${pod.id}: ${del.stderr}`);
          }
        }
      })();
      const started = Date.now();
      await Promise.all([...Array.from({ length: WORKERS }, worker), libcni]);
      expect(failures).toEqual([]);
      expect(calls).toBe(200);
      expect(Date.now() - started).toBeLessThan(120_000);
    }, 180_000);

    it('the rules name exactly the surviving attachments', async (ctx) => {
      if (!ready) ctx.skip();
      expect(failures).toEqual([]);
      const text = [
        (await inNs(bed.node, ['nft', 'list', 'ruleset'])).stdout,
        ...(await Promise.all(['iptables-nft-save', 'iptables-legacy-save'].map(async (b) => (await inNs(bed.node, [b], { ok: [1] })).stdout))),
      ].join('\n');
      const problems: string[] = [];
      for (let i = 0; i < ATTACHMENTS; i++) {
        const ip = mentions(text, ipOf(i));
        const port = mentions(text, String(portOf(i)));
        if (deleted(i) && (ip || port)) problems.push(`deleted stress${i} still present (address ${ip}, port ${port})`);
        if (!deleted(i) && !(ip && port)) problems.push(`surviving stress${i} missing (address ${ip}, port ${port})`);
      }
      for (let k = 0; k < BAD_CALLS; k++) if (mentions(text, ipOf(1000 + k))) problems.push(`bad call ${k} left rules`);
      expect(problems).toEqual([]);
      if (backend === 'nftables') {
        // Exact: each surviving host port maps to its own attachment's address.
        const table = JSON.parse((await inNs(bed.node, ['nft', '-j', 'list', 'map', 'inet', 'cni_portmap', 'hostports4_addr'])).stdout) as {
          nftables: Array<{ map?: { elem?: Array<[{ elem?: { val: { concat: [string, number] } }; concat?: [string, number] }, string]> } }>;
        };
        const elems = table.nftables.find((x) => x.map)?.map?.elem ?? [];
        const got = new Map(elems.map(([k, v]) => [(k.elem?.val ?? k).concat![1], v]));
        for (let i = 0; i < ATTACHMENTS; i++) expect(got.get(portOf(i))).toBe(deleted(i) ? undefined : ipOf(i));
      }
    });

    it('every surviving attachment forwards; deleted ones do not', async (ctx) => {
      if (!ready) ctx.skip();
      const survivors = Array.from({ length: ATTACHMENTS }, (_, i) => i).filter((i) => !deleted(i));
      const bad: string[] = [];
      // A few at a time: each request is one short-lived client process.
      for (let k = 0; k < survivors.length; k += 8) {
        await Promise.all(
          survivors.slice(k, k + 8).map(async (i) => {
            const r = reply(await bed.request(bed.client, 'tcp', '192.0.2.1', portOf(i), { timeoutMs: 3_000 }));
            if (r.tag !== 'sink') bad.push(`stress${i}: ${JSON.stringify(r)}`);
          }),
        );
      }
      const gone = Array.from({ length: ATTACHMENTS }, (_, i) => i).filter(deleted).filter((_, n) => n % 8 === 0);
      await Promise.all(
        gone.map(async (i) => {
          if ((await bed.request(bed.client, 'tcp', '192.0.2.1', portOf(i), { timeoutMs: 800 })) !== undefined) bad.push(`deleted stress${i} still forwards`);
        }),
      );
      for (const [k, { pod, keep }] of realPods.entries()) {
        if (keep) {
          await bed.serve(pod.netns, `real${k}`, 80);
          if (reply(await bed.request(bed.client, 'tcp', '192.0.2.1', 18000 + k)).tag !== `real${k}`) bad.push(`real pod ${k} does not forward`);
        } else if ((await bed.request(bed.client, 'tcp', '192.0.2.1', 18000 + k, { timeoutMs: 800 })) !== undefined) {
          bad.push(`deleted real pod ${k} still forwards`);
        }
      }
      expect(bad).toEqual([]);
    }, 120_000);
  });
}
