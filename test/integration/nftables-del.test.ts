/**
 * How an nftables DEL finishes, in a real node namespace:
 * - it is answered when the kernel has committed it (nft's echo), before nft waits for the kernel's RCU
 *   grace period: when DEL returns, the forward is gone from the kernel and from the wire, and the nft it
 *   left finishing exits on its own (no process stays in the node namespace);
 * - without a configured backend it also cleans iptables, but runs iptables only in the families that
 *   have a nat table able to hold rules (the DEL's own nft run lists the tables).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnatChain } from '../../src/backends/iptables/render.js';
import { NODE_V4, TestBed, inNs, reply, sh } from './harness.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Names of the processes running in a network namespace (`ip netns pids`). */
async function processesIn(ns: string): Promise<string[]> {
  const pids = (await sh(['ip', 'netns', 'pids', ns])).stdout.split('\n').filter(Boolean);
  return pids.flatMap((pid) => {
    try {
      return [readFileSync(`/proc/${pid}/comm`, 'utf8').trim()];
    } catch {
      return []; // exited meanwhile
    }
  });
}

describe('nftables DEL is answered at commit', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('the forward is gone from the kernel and the wire when DEL returns, and no nft is left behind', async () => {
    const pod = await bed.addPod([{ hostPort: 9800, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'delme', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9800)).tag).toBe('delme');
    await bed.delPod(pod);
    // Read right after DEL returned: nothing of the pod is left in our table.
    expect((await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout).not.toMatch(/\b9800\b/);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9800, { timeoutMs: 800 })).toBeUndefined();
    // The nft that committed the DEL finishes freeing on its own, well within a second.
    await sleep(1000);
    expect((await processesIn(bed.node)).filter((p) => p === 'nft' || p === 'stdbuf')).toEqual([]);
  });

  it('a failed DEL transaction is still reported (the fast path falls back and cleans up)', async () => {
    // Another owner took the pod's key: the compare-and-delete transaction fails, nft echoes nothing,
    // and DEL takes the slow path, which leaves the other owner's element alone.
    const pod = await bed.addPod([{ hostPort: 9801, containerPort: 80, protocol: 'tcp' }]);
    await inNs(bed.node, ['nft', 'delete', 'element', 'inet', 'cni_portmap', 'hostports4_port', '{ tcp . 9801 }']);
    await inNs(bed.node, ['nft', 'add', 'element', 'inet', 'cni_portmap', 'hostports4_port', '{ tcp . 9801 comment "00000000:0000000000000000 other/owner/eth0" : 81 }']);
    await bed.delPod(pod);
    const table = (await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout;
    expect(table).toMatch(/tcp \. 9801 comment "00000000:0000000000000000 other\/owner\/eth0" : 81/);
    expect(table).not.toContain(pod.id);
  });
});

describe('DEL without a configured backend looks in iptables only where a nat table exists', () => {
  let bed: TestBed;
  let log: string;
  let dir: string;
  beforeAll(async () => {
    // iptables binaries on PATH are wrappers that record each call, then run the real one.
    dir = mkdtempSync(join(tmpdir(), 'pm-ipt-wrappers-'));
    log = join(dir, 'calls.log');
    writeFileSync(log, '');
    for (const name of ['iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore', 'iptables-nft', 'ip6tables-nft', 'iptables-legacy', 'ip6tables-legacy']) {
      const file = join(dir, name);
      writeFileSync(file, `#!/bin/sh\necho "${name} $*" >> ${log}\nexec /usr/sbin/${name} "$@"\n`);
      chmodSync(file, 0o755);
    }
    bed = await TestBed.create({ env: { PATH: `${dir}:${process.env.PATH}` } });
  });
  afterAll(async () => {
    await bed?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  const calls = () => readFileSync(log, 'utf8').split('\n').filter(Boolean);

  it('no nat table: DEL runs no iptables process', async () => {
    const pod = await bed.addPod([{ hostPort: 9810, containerPort: 80, protocol: 'tcp' }]);
    writeFileSync(log, '');
    await bed.delPod(pod);
    expect(calls()).toEqual([]);
    expect((await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout).not.toContain(pod.id);
  });

  it('an IPv4 nat table (iptables-nft): DEL looks for the pod\'s chain there only, and removes it', async () => {
    const pod = await bed.addPod([{ hostPort: 9811, containerPort: 80, protocol: 'tcp' }]);
    // A chain named like the reference plugin's for this pod: a leftover the DEL must remove.
    const chain = dnatChain(bed.networkName, pod.id);
    await inNs(bed.node, ['iptables', '-t', 'nat', '-N', chain]);
    writeFileSync(log, '');
    await bed.delPod(pod);
    expect(calls().some((c) => /^iptables(-nft)? .*-S CNI-DN-/.test(c))).toBe(true);
    expect(calls().some((c) => c.startsWith('ip6tables'))).toBe(false);
    expect((await inNs(bed.node, ['iptables', '-t', 'nat', '-S'])).stdout).not.toContain(chain);
  });
});
