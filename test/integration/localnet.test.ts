/**
 * Localhost exposure (issue 6, item 4; the CVE-2020-8558 class). ADD turns route_localnet on for the
 * bridge so that node -> 127.0.0.1:hostPort works; route_localnet alone would also let any neighbour on
 * the bridge send packets to 127.0.0.0/8 on the node. The guard chain drops those. This test:
 *   - starts a service bound to 127.0.0.1 only on the node,
 *   - makes a neighbour namespace on the same bridge route 127.0.0.1 to the node (its own loopback
 *     address removed, route_localnet on),
 *   - shows the neighbour cannot reach that service, while node -> 127.0.0.1:hostPort reaches the pod,
 *   - shows the test is meaningful: with the guard flushed the neighbour does connect; then the guard
 *     comes back (iptables: the next ADD rewrites it; nftables: GC rewrites the skeleton, while a fast ADD
 *     only adds elements and a DEL only deletes its own, and CHECK reports the damage until then).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pod, ROOT, TestBed, inNs, reply } from './harness.js';

const ECHO_SERVER = join(ROOT, 'test', 'integration', 'echo-server.mjs');
const LOCAL_PORT = 7777;

async function serveLocalhostOnly(ns: string, tag: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ECHO_SERVER, tag, String(LOCAL_PORT), '127.0.0.1'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => fail(new Error('localhost echo server did not start')), 10_000);
    child.stdout!.once('data', () => {
      clearTimeout(t);
      ok();
    });
    child.once('exit', (code) => fail(new Error(`localhost echo server exited with ${code}`)));
  });
  return child;
}

/** Turns a pod namespace into an attacker that routes 127.0.0.1 to the node over the bridge. */
async function makeNeighbourRouteLoopbackToNode(ns: string): Promise<void> {
  await inNs(ns, ['ip', 'addr', 'del', '127.0.0.1/8', 'dev', 'lo'], { ok: [2] });
  await inNs(ns, ['ip', 'route', 'del', 'local', '127.0.0.0/8', 'dev', 'lo', 'table', 'local'], { ok: [2] });
  await inNs(ns, ['sysctl', '-qw', 'net.ipv4.conf.all.route_localnet=1', 'net.ipv4.conf.eth0.route_localnet=1']);
  await inNs(ns, ['sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.eth0.rp_filter=0']);
  await inNs(ns, ['ip', 'route', 'replace', '127.0.0.1/32', 'via', '10.244.0.1', 'dev', 'eth0']);
}

for (const backend of ['nftables', 'iptables'] as const) {
  describe(`localhost exposure guard (${backend})`, () => {
    let bed: TestBed;
    let pod: Pod;
    let neighbour: Pod;
    let server: ChildProcess | undefined;

    beforeAll(async () => {
      bed = await TestBed.create({ portmap: { backend } });
      pod = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
      neighbour = await bed.addPod([]);
      await bed.serve(pod.netns, 'pod', 80);
      server = await serveLocalhostOnly(bed.node, 'node-local');
      await makeNeighbourRouteLoopbackToNode(neighbour.netns);
    }, 120_000);
    afterAll(async () => {
      server?.kill('SIGKILL');
      await bed?.destroy();
    });

    it('ADD turned route_localnet on for the bridge', async () => {
      expect((await inNs(bed.node, ['sysctl', '-n', 'net.ipv4.conf.cni0.route_localnet'])).stdout.trim()).toBe('1');
    });

    it('node -> 127.0.0.1:hostPort reaches the pod, and node -> 127.0.0.1 local services still work', async () => {
      expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080)).tag).toBe('pod');
      expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', LOCAL_PORT)).tag).toBe('node-local');
    });

    it('a neighbour on the bridge cannot reach a 127.0.0.1-only service on the node', async () => {
      expect(await bed.request(neighbour.netns, 'tcp', '127.0.0.1', LOCAL_PORT, { timeoutMs: 1_500 })).toBeUndefined();
      expect(await bed.request(neighbour.netns, 'udp', '127.0.0.1', LOCAL_PORT, { timeoutMs: 1_000 })).toBeUndefined();
      // The neighbour is otherwise healthy: it reaches the pod through the hostPort.
      expect(reply(await bed.request(neighbour.netns, 'tcp', '192.0.2.1', 8080)).tag).toBe('pod');
    });

    it(`the test is meaningful: without the guard the neighbour connects; ${backend === 'nftables' ? 'CHECK (self-healing) and GC restore' : 'the next ADD restores'} the guard`, async () => {
      if (backend === 'nftables') await inNs(bed.node, ['nft', 'flush', 'chain', 'inet', 'cni_portmap', 'guard']);
      else await inNs(bed.node, ['iptables', '-t', 'filter', '-F', 'CNI-HOSTPORT-GUARD']);
      const open = reply(await bed.request(neighbour.netns, 'tcp', '127.0.0.1', LOCAL_PORT, { timeoutMs: 2_000 }));
      expect(open.tag).toBe('node-local');
      expect(open.peer).toBe(neighbour.ip4);
      const again = await bed.addPod([{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }]);
      expect(again.ip4).toBeDefined();
      await bed.delPod(again);
      if (backend === 'nftables') {
        // A fast ADD does not see a flushed chain; CHECK does, and heals it (see "Surviving firewall reloads").
        expect((await bed.checkPod(pod)).code).toBe(0);
        expect(await bed.request(neighbour.netns, 'tcp', '127.0.0.1', LOCAL_PORT, { timeoutMs: 1_500 })).toBeUndefined();
        // GC rewrites the skeleton too.
        await inNs(bed.node, ['nft', 'flush', 'chain', 'inet', 'cni_portmap', 'guard']);
        const valid = [pod, neighbour].map((p) => ({ containerID: p.id, ifname: p.ifname }));
        const gc = await bed.plugin({ CNI_COMMAND: 'GC' }, { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': valid });
        expect(gc.code).toBe(0);
      }
      expect(await bed.request(neighbour.netns, 'tcp', '127.0.0.1', LOCAL_PORT, { timeoutMs: 1_500 })).toBeUndefined();
      expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080)).tag).toBe('pod');
    });
  });
}
