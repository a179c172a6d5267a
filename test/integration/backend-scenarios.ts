/**
 * The traffic scenarios every backend must pass, written once: nftables.test.ts and iptables.test.ts
 * run them with their backend, a way to read the node's state, and their own extra tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BedOptions, CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V4_B, NODE_V6, type Pod, TestBed, inNs, reply } from './harness.js';

export type Backend = 'nftables' | 'iptables';

export interface ScenarioOptions {
  /** The node's firewall state of this backend, as text that names every owner (container id) in it. */
  state: (bed: TestBed) => Promise<string>;
  /** Matches any attachment's entry in that state (to prove nothing is left). */
  owned: RegExp;
  /** Extra tests sharing the traffic bed (a pod with tcp 8080->80 and udp 8053->53, and a sibling pod). */
  traffic?: (ctx: () => { bed: TestBed; pod: Pod; sibling: Pod }) => void;
  /** Extra tests sharing the ownership bed. */
  ownership?: (bed: () => TestBed) => void;
  /** Test bed options (another plugin binary, the environment of plugin calls); named in the titles by `label`. */
  bed?: Omit<BedOptions, 'portmap'>;
  label?: string;
}

export function backendScenarios(backend: Backend, opts: ScenarioOptions): void {
  const title = (what: string) => `${backend} backend${opts.label ? ` (${opts.label})` : ''}: ${what}`;
  const newBed = () => TestBed.create({ ...opts.bed, portmap: { backend } });
  describe(title('traffic through real bridge + host-local pods'), () => {
    let bed: TestBed;
    let pod: Pod;
    let sibling: Pod;

    beforeAll(async () => {
      bed = await newBed();
      pod = await bed.addPod([
        { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostPort: 8053, containerPort: 53, protocol: 'udp' },
      ]);
      sibling = await bed.addPod([]);
      await bed.serve(pod.netns, 'pod1', 80);
      await bed.serve(pod.netns, 'pod1', 53);
    });
    afterAll(() => bed?.destroy());

    it('forwards client -> node:hostPort over IPv4 and IPv6, TCP and UDP, keeping the client address', async () => {
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'pod1', peer: CLIENT_V4 });
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'pod1', peer: CLIENT_V6 });
      expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 8053))).toEqual({ tag: 'pod1', peer: CLIENT_V4 });
      expect(reply(await bed.request(bed.client, 'udp', NODE_V6, 8053))).toEqual({ tag: 'pod1', peer: CLIENT_V6 });
    });

    it('forwards the node to its own address and to 127.0.0.1', async () => {
      expect(reply(await bed.request(bed.node, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
      expect(reply(await bed.request(bed.node, 'tcp', NODE_V6, 8080)).tag).toBe('pod1');
      const local = reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080));
      expect(local.tag).toBe('pod1');
      // 127.0.0.1 cannot be a source on the bridge: the connection was masqueraded to the bridge address.
      expect(local.peer).toBe('10.244.0.1');
      expect((await inNs(bed.node, ['sysctl', '-n', 'net.ipv4.conf.cni0.route_localnet'])).stdout.trim()).toBe('1');
    });

    it('hairpins the pod itself and a sibling pod of its subnet through the node address (masqueraded)', async () => {
      expect(reply(await bed.request(pod.netns, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
      expect(reply(await bed.request(sibling.netns, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
      expect(reply(await bed.request(sibling.netns, 'tcp', NODE_V6, 8080)).tag).toBe('pod1');
    });

    it('does not translate traffic routed through the node (only local destinations)', async () => {
      // The client routes 203.0.113.0/24 via the node; a packet to 203.0.113.9:8080 must not reach the pod.
      await inNs(bed.client, ['ip', 'route', 'replace', '203.0.113.0/24', 'via', NODE_V4]);
      expect(await bed.request(bed.client, 'tcp', '203.0.113.9', 8080, { timeoutMs: 800 })).toBeUndefined();
    });

    opts.traffic?.(() => ({ bed, pod, sibling }));
  });

  describe(title('ownership, DEL, GC, hostIP, conntrack, STATUS'), () => {
    let bed: TestBed;
    beforeAll(async () => {
      bed = await newBed();
    });
    afterAll(() => bed?.destroy());

    it('honours hostIP: only that node address forwards', async () => {
      const pod = await bed.addPod([{ hostPort: 9090, containerPort: 80, protocol: 'tcp', hostIP: NODE_V4_B }]);
      await bed.serve(pod.netns, 'hostip', 80);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4_B, 9090)).tag).toBe('hostip');
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 9090, { timeoutMs: 800 })).toBeUndefined();
      expect(await bed.request(bed.client, 'tcp', NODE_V6, 9090, { timeoutMs: 800 })).toBeUndefined();
      await bed.delPod(pod);
      expect(await opts.state(bed)).not.toContain(pod.id);
    });

    it('DEL with mappings and without portMappings removes every entry of the pod; DEL twice is fine', async () => {
      const a = await bed.addPod([{ hostPort: 9100, containerPort: 80, protocol: 'tcp' }, { hostPort: 9101, containerPort: 81, protocol: 'udp' }]);
      const b = await bed.addPod([{ hostPort: 9102, containerPort: 80, protocol: 'sctp' }]);
      expect(await opts.state(bed)).toContain(a.id);
      expect(await opts.state(bed)).toContain(b.id);
      expect((await bed.delPod(a)).code).toBe(0);
      expect(await opts.state(bed)).not.toContain(a.id);
      expect((await bed.delPod(a)).code).toBe(0);
      await bed.delPod(b, { withMappings: false });
      const after = await opts.state(bed);
      expect(after).not.toContain(b.id);
      expect(after).not.toContain(b.ip4!);
      expect((await bed.delPod(b, { withMappings: false })).code).toBe(0);
    });

    it('DEL with neither portMappings nor prevResult (plugin called directly) removes the entries', async () => {
      const pod = await bed.addPod([{ hostPort: 9200, containerPort: 80, protocol: 'tcp' }]);
      expect(await opts.state(bed)).toContain(pod.id);
      const res = await bed.plugin({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: pod.id, CNI_IFNAME: 'eth0', CNI_NETNS: '' }, bed.portmapConfig());
      expect(res.code).toBe(0);
      expect(await opts.state(bed)).not.toContain(pod.id);
    });

    it('the newest owner of a hostPort wins over a stale one, whose later DEL leaves it in place', async () => {
      const stale = await bed.addPod([{ hostPort: 9300, containerPort: 80, protocol: 'tcp' }]);
      await bed.serve(stale.netns, 'stale', 80);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('stale');
      const fresh = await bed.addPod([{ hostPort: 9300, containerPort: 80, protocol: 'tcp' }]);
      await bed.serve(fresh.netns, 'fresh', 80);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('fresh');
      await bed.delPod(stale);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('fresh');
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9300)).tag).toBe('fresh');
      // and with DEL without mappings too (the path that reads the state)
      const stale2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
      const fresh2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
      await bed.serve(fresh2.netns, 'fresh2', 80);
      await bed.delPod(stale2, { withMappings: false });
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9301)).tag).toBe('fresh2');
      await bed.delPod(fresh);
      await bed.delPod(fresh2);
    });

    it('an ADD of the same attachment with other ports leaves exactly the new forwards; its DEL leaves nothing', async () => {
      const pod = await bed.addPod([{ hostPort: 9400, containerPort: 80, protocol: 'tcp' }, { hostPort: 9402, containerPort: 80, protocol: 'tcp' }, { hostPort: 9403, containerPort: 53, protocol: 'udp' }]);
      await bed.serve(pod.netns, 'readd80', 80);
      await bed.serve(pod.netns, 'readd81', 81);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9400)).tag).toBe('readd80');
      // The runtime retries the ADD with a changed spec: 9400 gone, 9401 new, 9402 now to port 81, 9403 gone.
      const mappings = [{ hostPort: 9401, containerPort: 80, protocol: 'tcp' }, { hostPort: 9402, containerPort: 81, protocol: 'tcp' }];
      const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: pod.id, CNI_IFNAME: pod.ifname, CNI_NETNS: pod.netnsPath };
      const again = await bed.plugin(env, bed.portmapConfig({ runtimeConfig: { portMappings: mappings }, prevResult: pod.result }));
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 9400, { timeoutMs: 800 })).toBeUndefined();
      expect(await bed.request(bed.client, 'tcp', NODE_V6, 9400, { timeoutMs: 800 })).toBeUndefined();
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9401)).tag).toBe('readd80');
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9402)).tag).toBe('readd81');
      const state = await opts.state(bed);
      expect(state).not.toMatch(/\b9400\b/);
      expect(state).not.toMatch(/\b9403\b/);
      // DEL with the new mappings (what the runtime now knows) removes everything of the attachment.
      expect((await bed.delPod({ ...pod, mappings })).code).toBe(0);
      const after = await opts.state(bed);
      expect(after).not.toContain(pod.id);
      expect(after).not.toMatch(/\b940[0-3]\b/);
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 9401, { timeoutMs: 800 })).toBeUndefined();
    });

    it('GC removes only the attachments missing from cni.dev/valid-attachments, of its own network', async () => {
      const keep = await bed.addPod([{ hostPort: 9400, containerPort: 80, protocol: 'tcp' }]);
      const drop = await bed.addPod([{ hostPort: 9401, containerPort: 80, protocol: 'tcp' }]);
      await bed.serve(keep.netns, 'keep', 80);
      bed.writeConflist({ backend }, 'othernet');
      const other = await bed.addPod([{ hostPort: 9402, containerPort: 80, protocol: 'tcp' }]);
      bed.writeConflist({ backend });
      const res = await bed.plugin(
        { CNI_COMMAND: 'GC' },
        { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] },
      );
      expect(res.code).toBe(0);
      const state = await opts.state(bed);
      expect(state).toContain(keep.id);
      expect(state).not.toContain(drop.id);
      expect(state).toContain(other.id);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9400)).tag).toBe('keep');
      // the older key name is accepted too
      const res2 = await bed.plugin({ CNI_COMMAND: 'GC' }, { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/attachments': [] });
      expect(res2.code).toBe(0);
      const after = await opts.state(bed);
      expect(after).not.toContain(keep.id);
      expect(after).toContain(other.id);
    });

    it('a UDP client that keeps its source port reaches the new pod after a pod replacement', async () => {
      const first = await bed.addPod([{ hostPort: 9500, containerPort: 53, protocol: 'udp' }]);
      await bed.serve(first.netns, 'first', 53);
      expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 9500, { sourcePort: 54321 })).tag).toBe('first');
      await bed.delPod(first);
      const second = await bed.addPod([{ hostPort: 9500, containerPort: 53, protocol: 'udp' }]);
      await bed.serve(second.netns, 'second', 53);
      expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 9500, { sourcePort: 54321 })).tag).toBe('second');
      await bed.delPod(second);
    });

    it('STATUS succeeds with the backend usable', async () => {
      expect((await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({}, '1.1.0'))).code).toBe(0);
    });

    opts.ownership?.(() => bed);
  });

  describe(title('50 pods added and deleted concurrently'), () => {
    let bed: TestBed;
    beforeAll(async () => {
      bed = await newBed();
    });
    afterAll(() => bed?.destroy());

    it('every mapping works while they live and nothing is left after', async () => {
      const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => bed.addPod([{ hostPort: 10000 + i, containerPort: 80, protocol: 'tcp' }])));
      const state = await opts.state(bed);
      for (const p of pods) expect(state).toContain(p.id);
      await Promise.all(pods.map((p, i) => bed.serve(p.netns, `p${i}`, 80)));
      const replies = await Promise.all(pods.map((_, i) => bed.request(bed.client, 'tcp', NODE_V4, 10000 + i, { timeoutMs: 5000 })));
      replies.forEach((r, i) => expect(reply(r).tag).toBe(`p${i}`));
      const dels = await Promise.all(pods.map((p) => bed.delPod(p)));
      for (const d of dels) expect(d.code).toBe(0);
      const after = await opts.state(bed);
      for (const p of pods) expect(after).not.toContain(p.id);
      expect(after).not.toMatch(opts.owned);
    });
  });
}
