import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V4_B, NODE_V6, type Pod, TestBed, inNs, reply } from './harness.js';

const ifUp = (bed: TestBed) => inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap']).then((r) => r.stdout);

describe('nftables backend: traffic through real bridge + host-local pods', () => {
  let bed: TestBed;
  let pod: Pod;
  let sibling: Pod;

  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
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
    const self = reply(await bed.request(pod.netns, 'tcp', NODE_V4, 8080));
    expect(self).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
    const sib = reply(await bed.request(sibling.netns, 'tcp', NODE_V4, 8080));
    expect(sib).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
    const sib6 = reply(await bed.request(sibling.netns, 'tcp', NODE_V6, 8080));
    expect(sib6.tag).toBe('pod1');
  });

  it('does not translate traffic routed through the node (only local destinations)', async () => {
    // The client routes 203.0.113.0/24 via the node; a packet to 203.0.113.9:8080 must not reach the pod.
    await inNs(bed.client, ['ip', 'route', 'replace', '203.0.113.0/24', 'via', NODE_V4]);
    expect(await bed.request(bed.client, 'tcp', '203.0.113.9', 8080, { timeoutMs: 800 })).toBeUndefined();
  });

  it('CHECK passes, then fails once the table has been flushed', async () => {
    expect((await bed.checkPod(pod)).code).toBe(0);
    await inNs(bed.node, ['nft', 'flush', 'table', 'inet', 'cni_portmap']);
    const broken = await bed.checkPod(pod);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/chain .* does not hold the expected rules|missing hostPort entry/);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
  });
});

describe('nftables backend: ownership, DEL, GC, hostIP, conntrack', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('honours hostIP: only that node address forwards', async () => {
    const pod = await bed.addPod([{ hostPort: 9090, containerPort: 80, protocol: 'tcp', hostIP: NODE_V4_B }]);
    await bed.serve(pod.netns, 'hostip', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4_B, 9090)).tag).toBe('hostip');
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9090, { timeoutMs: 800 })).toBeUndefined();
    expect(await bed.request(bed.client, 'tcp', NODE_V6, 9090, { timeoutMs: 800 })).toBeUndefined();
    await bed.delPod(pod);
  });

  it('DEL without portMappings removes every element of the pod; DEL twice is fine', async () => {
    const pod = await bed.addPod([{ hostPort: 9100, containerPort: 80, protocol: 'tcp' }, { hostPort: 9101, containerPort: 81, protocol: 'udp' }]);
    expect(await ifUp(bed)).toContain(pod.id);
    await bed.delPod(pod, { withMappings: false });
    expect(await ifUp(bed)).not.toContain(pod.id);
    expect(await ifUp(bed)).not.toContain(pod.ip4!);
    expect((await bed.delPod(pod, { withMappings: false })).code).toBe(0);
  });

  it('DEL with neither portMappings nor prevResult (plugin called directly) removes the elements', async () => {
    const pod = await bed.addPod([{ hostPort: 9200, containerPort: 80, protocol: 'tcp' }]);
    expect(await ifUp(bed)).toContain(pod.id);
    const res = await bed.plugin({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: pod.id, CNI_IFNAME: 'eth0', CNI_NETNS: '' }, bed.portmapConfig());
    expect(res.code).toBe(0);
    expect(await ifUp(bed)).not.toContain(pod.id);
  });

  it('a new owner takes a key from a stale owner, whose later DEL leaves it in place', async () => {
    const stale = await bed.addPod([{ hostPort: 9300, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(stale.netns, 'stale', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('stale');
    const fresh = await bed.addPod([{ hostPort: 9300, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(fresh.netns, 'fresh', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('fresh');
    await bed.delPod(stale);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9300)).tag).toBe('fresh');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9300)).tag).toBe('fresh');
    // and with DEL without mappings too (the slow path)
    const stale2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
    const fresh2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(fresh2.netns, 'fresh2', 80);
    await bed.delPod(stale2, { withMappings: false });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9301)).tag).toBe('fresh2');
    await bed.delPod(fresh);
    await bed.delPod(fresh2);
  });

  it('GC removes only the owners missing from cni.dev/valid-attachments', async () => {
    const keep = await bed.addPod([{ hostPort: 9400, containerPort: 80, protocol: 'tcp' }]);
    const drop = await bed.addPod([{ hostPort: 9401, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(keep.netns, 'keep', 80);
    const res = await bed.plugin(
      { CNI_COMMAND: 'GC' },
      { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] },
    );
    expect(res.code).toBe(0);
    const table = await ifUp(bed);
    expect(table).toContain(keep.id);
    expect(table).not.toContain(drop.id);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9400)).tag).toBe('keep');
    // the older key name is accepted too
    const res2 = await bed.plugin({ CNI_COMMAND: 'GC' }, { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/attachments': [] });
    expect(res2.code).toBe(0);
    expect(await ifUp(bed)).not.toContain(keep.id);
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

  it('an ADD after the table was deleted (nft flush ruleset, say) rebuilds it', async () => {
    const before = await bed.addPod([{ hostPort: 9700, containerPort: 80, protocol: 'tcp' }]);
    await inNs(bed.node, ['nft', 'delete', 'table', 'inet', 'cni_portmap']);
    expect((await bed.checkPod(before)).code).toBe(1);
    const after = await bed.addPod([{ hostPort: 9701, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(after.netns, 'rebuilt', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9701)).tag).toBe('rebuilt');
    expect((await bed.checkPod(after)).code).toBe(0);
    await bed.delPod(after);
    await bed.delPod(before);
  });

  it('STATUS succeeds with nft usable', async () => {
    const res = await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({}, '1.1.0'));
    expect(res.code).toBe(0);
  });
});

describe('nftables backend: 50 pods added and deleted concurrently', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('every mapping works while they live and nothing is left after', async () => {
    const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => bed.addPod([{ hostPort: 10000 + i, containerPort: 80, protocol: 'tcp' }])));
    const table = await ifUp(bed);
    for (const p of pods) expect(table).toContain(p.id);
    await Promise.all(pods.map((p, i) => bed.serve(p.netns, `p${i}`, 80)));
    const replies = await Promise.all(pods.map((_, i) => bed.request(bed.client, 'tcp', NODE_V4, 10000 + i, { timeoutMs: 5000 })));
    replies.forEach((r, i) => expect(reply(r).tag).toBe(`p${i}`));
    const dels = await Promise.all(pods.map((p) => bed.delPod(p)));
    for (const d of dels) expect(d.code).toBe(0);
    const after = await ifUp(bed);
    for (const p of pods) expect(after).not.toContain(p.id);
    expect(after).not.toMatch(/"comment": "[0-9a-f]{8}:/);
  });
});

describe('nftables backend: snat, masqAll and conditions with real traffic', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('snat: false forwards without masquerading (client address kept, no localhost forwarding)', async () => {
    bed.writeConflist({ backend: 'nftables', snat: false });
    const pod = await bed.addPod([{ hostPort: 9600, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'nosnat', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9600))).toEqual({ tag: 'nosnat', peer: CLIENT_V4 });
    expect(await bed.request(bed.node, 'tcp', '127.0.0.1', 9600, { timeoutMs: 800 })).toBeUndefined();
    await bed.delPod(pod);
  });

  it('masqAll masquerades every DNATed connection to the pod', async () => {
    bed.writeConflist({ backend: 'nftables', masqAll: true });
    const pod = await bed.addPod([{ hostPort: 9601, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'masqall', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9601))).toEqual({ tag: 'masqall', peer: '10.244.0.1' });
    await bed.delPod(pod);
  });

  it('conditionsV4 apply to this attachment only', async () => {
    bed.writeConflist({ backend: 'nftables', conditionsV4: ['ip', 'saddr', '!=', CLIENT_V4] });
    const cond = await bed.addPod([{ hostPort: 9602, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(cond.netns, 'cond', 80);
    bed.writeConflist({ backend: 'nftables' });
    const plain = await bed.addPod([{ hostPort: 9603, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(plain.netns, 'plain', 80);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9602, { timeoutMs: 800 })).toBeUndefined();
    expect(reply(await bed.request(bed.node, 'tcp', NODE_V4, 9602)).tag).toBe('cond');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9602)).tag).toBe('cond');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9603)).tag).toBe('plain');
    bed.writeConflist({ backend: 'nftables', conditionsV4: ['ip', 'saddr', '!=', CLIENT_V4] });
    expect((await bed.checkPod(cond)).code).toBe(0);
    await bed.delPod(cond);
    expect(await ifUp(bed)).not.toContain(cond.id);
    bed.writeConflist({ backend: 'nftables' });
    await bed.delPod(plain);
  });
});
