/**
 * How an nftables DEL finishes, in a real node namespace:
 * - it is answered when the kernel has committed it (nft's echo), before nft waits for the kernel's RCU
 *   grace period: when DEL returns, the forward is gone from the kernel and from the wire, and the nft it
 *   left finishing exits on its own (no process stays in the node namespace);
 * - it deletes without comparing only while the attachment's ownership witness is there: a takeover
 *   removes it, and the stale owner's DEL then compares each element and leaves the new owner's.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

  it('a takeover removes the previous owner\'s witness: its DEL then compares and leaves the new owner\'s forward', async () => {
    const stale = await bed.addPod([{ hostPort: 9801, containerPort: 80, protocol: 'tcp' }]);
    const fresh = await bed.addPod([{ hostPort: 9801, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(fresh.netns, 'fresh', 80);
    const owners = async () => (await inNs(bed.node, ['nft', 'list', 'set', 'inet', 'cni_portmap', 'owners'])).stdout;
    expect(await owners()).not.toContain(stale.id);
    expect(await owners()).toContain(fresh.id);
    await bed.delPod(stale);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9801)).tag).toBe('fresh');
    await bed.delPod(fresh);
    expect(await owners()).not.toContain(fresh.id);
  });

  it('DEL twice: the second finds no witness, compares, and succeeds with nothing to do', async () => {
    const pod = await bed.addPod([{ hostPort: 9802, containerPort: 80, protocol: 'tcp' }]);
    expect((await bed.delPod(pod)).code).toBe(0);
    const before = (await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout;
    expect((await bed.delPod(pod)).code).toBe(0);
    expect((await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout).toBe(before);
    expect(before).not.toContain(pod.id);
  });
});
