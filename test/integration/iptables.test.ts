/**
 * The iptables backend against real traffic: the nftables.test.ts scenarios with `backend: "iptables"`,
 * a subset with the legacy flavour (chosen because kube-proxy's KUBE-SERVICES is in iptables-legacy), and
 * attachments made by the reference Go plugin (/usr/lib/cni/portmap) then deleted and GC'd by ours.
 * Every rule lives in the test bed's node namespace.
 */
import { rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V4_B, NODE_V6, PLUGIN, type Pod, REFERENCE_PORTMAP, TestBed, inNs, reply } from './harness.js';

type Flavour = 'nft' | 'legacy';

/** iptables-save (both families) of the node's nat table in one flavour. */
const natSave = async (bed: TestBed, flavour: Flavour = 'nft'): Promise<string> => {
  const v4 = await inNs(bed.node, [`iptables-${flavour}-save`, '-t', 'nat'], { ok: [1] });
  const v6 = await inNs(bed.node, [`ip6tables-${flavour}-save`, '-t', 'nat'], { ok: [1] });
  return `${v4.stdout}\n${v6.stdout}`;
};

const dnChains = (save: string): string[] => [...new Set(save.match(/CNI-DN-[0-9a-f]{21}/g) ?? [])];

/** Re-ADD of an existing pod, calling the plugin directly with the pod's prevResult (a runtime retry). */
const reAdd = (bed: TestBed, pod: Pod) =>
  bed.plugin(
    { CNI_COMMAND: 'ADD', CNI_CONTAINERID: pod.id, CNI_IFNAME: pod.ifname, CNI_NETNS: pod.netnsPath },
    { ...bed.portmapConfig(), runtimeConfig: { portMappings: pod.mappings }, prevResult: pod.result },
  );

describe('iptables backend: traffic through real bridge + host-local pods', () => {
  let bed: TestBed;
  let pod: Pod;
  let sibling: Pod;

  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'iptables' } });
    pod = await bed.addPod([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 8053, containerPort: 53, protocol: 'udp' },
    ]);
    sibling = await bed.addPod([]);
    await bed.serve(pod.netns, 'pod1', 80);
    await bed.serve(pod.netns, 'pod1', 53);
  });
  afterAll(() => bed?.destroy());

  it('writes the reference layout in the nf_tables flavour (the iptables on PATH), nothing in legacy', async () => {
    const save = await natSave(bed);
    expect(save).toContain('-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    expect(save).toContain('-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    expect(save).toContain('-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ');
    expect(save).toContain('-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000');
    expect(save).toContain('-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE');
    expect(save).toContain(`--comment "dnat name: \\"testnet\\" id: \\"${pod.id}\\"" -m multiport --dports 8080 -j CNI-DN-`);
    expect(save).toMatch(/-A CNI-DN-[0-9a-f]{21} -s 10\.244\.0\.0\/24 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK/);
    expect(save).toMatch(/-A CNI-DN-[0-9a-f]{21} -s 127\.0\.0\.1\/32 -p tcp -m tcp --dport 8080 -j CNI-HOSTPORT-SETMARK/);
    expect(save).toMatch(new RegExp(`-A CNI-DN-[0-9a-f]{21} -p udp -m udp --dport 8053 -j DNAT --to-destination \\[${pod.ip6}\\]:53`));
    // The shared jumps are not duplicated by a second ADD (the sibling's ADD had no mappings; re-ADD the pod).
    expect((await reAdd(bed, pod)).code).toBe(0);
    const again = await natSave(bed);
    expect(again.match(/-A PREROUTING .*CNI-HOSTPORT-DNAT/g)).toHaveLength(2); // one per family
    expect(again.match(/-A POSTROUTING .*CNI-HOSTPORT-MASQ/g)).toHaveLength(2);
    expect(again.match(/-A CNI-HOSTPORT-DNAT /g)).toHaveLength(4); // tcp + udp, per family
    expect(dnChains(await natSave(bed, 'legacy'))).toEqual([]);
  });

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
    expect(local.peer).toBe('10.244.0.1');
    expect((await inNs(bed.node, ['sysctl', '-n', 'net.ipv4.conf.cni0.route_localnet'])).stdout.trim()).toBe('1');
  });

  it('hairpins the pod itself and a sibling pod of its subnet through the node address (masqueraded)', async () => {
    expect(reply(await bed.request(pod.netns, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
    expect(reply(await bed.request(sibling.netns, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'pod1', peer: '10.244.0.1' });
    expect(reply(await bed.request(sibling.netns, 'tcp', NODE_V6, 8080)).tag).toBe('pod1');
  });

  it('does not translate traffic routed through the node (only local destinations)', async () => {
    await inNs(bed.client, ['ip', 'route', 'replace', '203.0.113.0/24', 'via', NODE_V4]);
    expect(await bed.request(bed.client, 'tcp', '203.0.113.9', 8080, { timeoutMs: 800 })).toBeUndefined();
  });

  it('CHECK passes, fails once CNI-HOSTPORT-DNAT has been flushed, and a new ADD repairs it', async () => {
    expect((await bed.checkPod(pod)).code).toBe(0);
    await inNs(bed.node, ['iptables-nft', '-t', 'nat', '-F', 'CNI-HOSTPORT-DNAT']);
    const broken = await bed.checkPod(pod);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/CNI-HOSTPORT-DNAT has no entry rule/);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
    expect((await reAdd(bed, pod)).code).toBe(0);
    expect((await bed.checkPod(pod)).code).toBe(0);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
    // A missing shared jump is found by CHECK and restored by ADD too.
    await inNs(bed.node, ['iptables-nft', '-t', 'nat', '-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    expect((await bed.checkPod(pod)).stderr).toMatch(/jump from PREROUTING to CNI-HOSTPORT-DNAT is missing/);
    expect((await reAdd(bed, pod)).code).toBe(0);
    expect((await bed.checkPod(pod)).code).toBe(0);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
  });
});

describe('iptables backend: ownership, DEL, GC, hostIP, conntrack, STATUS', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'iptables' } });
  });
  afterAll(() => bed?.destroy());

  it('honours hostIP: only that node address forwards', async () => {
    const pod = await bed.addPod([{ hostPort: 9090, containerPort: 80, protocol: 'tcp', hostIP: NODE_V4_B }]);
    await bed.serve(pod.netns, 'hostip', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4_B, 9090)).tag).toBe('hostip');
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9090, { timeoutMs: 800 })).toBeUndefined();
    expect(await bed.request(bed.client, 'tcp', NODE_V6, 9090, { timeoutMs: 800 })).toBeUndefined();
    await bed.delPod(pod);
    expect(await natSave(bed)).not.toContain(pod.id);
  });

  it('DEL with mappings removes exactly the pod\'s rules; DEL without portMappings too; DEL twice is fine', async () => {
    const a = await bed.addPod([{ hostPort: 9100, containerPort: 80, protocol: 'tcp' }, { hostPort: 9101, containerPort: 81, protocol: 'udp' }]);
    const b = await bed.addPod([{ hostPort: 9102, containerPort: 80, protocol: 'sctp' }]);
    const before = await natSave(bed);
    expect(before).toContain(a.id);
    expect(before).toContain(b.id);
    expect((await bed.delPod(a)).code).toBe(0);
    expect(await natSave(bed)).not.toContain(a.id);
    expect((await bed.delPod(a)).code).toBe(0);
    await bed.delPod(b, { withMappings: false });
    const after = await natSave(bed);
    expect(after).not.toContain(b.id);
    expect(after).not.toContain(b.ip4!);
    expect((await bed.delPod(b, { withMappings: false })).code).toBe(0);
  });

  it('DEL with neither portMappings nor prevResult (plugin called directly) removes the rules', async () => {
    const pod = await bed.addPod([{ hostPort: 9200, containerPort: 80, protocol: 'tcp' }]);
    expect(await natSave(bed)).toContain(pod.id);
    const res = await bed.plugin({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: pod.id, CNI_IFNAME: 'eth0', CNI_NETNS: '' }, bed.portmapConfig());
    expect(res.code).toBe(0);
    expect(await natSave(bed)).not.toContain(pod.id);
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
    const stale2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
    const fresh2 = await bed.addPod([{ hostPort: 9301, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(fresh2.netns, 'fresh2', 80);
    await bed.delPod(stale2, { withMappings: false });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9301)).tag).toBe('fresh2');
    await bed.delPod(fresh);
    await bed.delPod(fresh2);
  });

  it('GC removes only the attachments missing from cni.dev/valid-attachments', async () => {
    const keep = await bed.addPod([{ hostPort: 9400, containerPort: 80, protocol: 'tcp' }]);
    const drop = await bed.addPod([{ hostPort: 9401, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(keep.netns, 'keep', 80);
    // Another network's rules are never GC'd by this one.
    bed.writeConflist({ backend: 'iptables' }, 'othernet');
    const other = await bed.addPod([{ hostPort: 9402, containerPort: 80, protocol: 'tcp' }]);
    bed.writeConflist({ backend: 'iptables' });
    const res = await bed.plugin(
      { CNI_COMMAND: 'GC' },
      { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': [{ containerID: keep.id, ifname: 'eth0' }] },
    );
    expect(res.code).toBe(0);
    const save = await natSave(bed);
    expect(save).toContain(keep.id);
    expect(save).not.toContain(drop.id);
    expect(save).toContain(other.id);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9400)).tag).toBe('keep');
    const res2 = await bed.plugin({ CNI_COMMAND: 'GC' }, { ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/attachments': [] });
    expect(res2.code).toBe(0);
    const after = await natSave(bed);
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

  it('refuses iptables conditions that would add a target or a command (code 7)', async () => {
    for (const bad of [['-j', 'ACCEPT'], ['-vjACCEPT'], ['--jum', 'DROP'], ['-d', '192.0.2.1', '-X'], ['!', '-t', 'filter']]) {
      const pod = { hostPort: 9600, containerPort: 80, protocol: 'tcp' };
      const res = await bed.plugin(
        { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bad-conditions', CNI_IFNAME: 'eth0', CNI_NETNS: '/var/run/netns/none' },
        {
          ...bed.portmapConfig({ conditionsV4: bad }),
          runtimeConfig: { portMappings: [pod] },
          prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.244.0.200/24' }] },
        },
      );
      expect(res.code).toBe(1);
      expect(res.json?.code).toBe(7);
    }
    expect(await natSave(bed)).not.toContain('bad-conditions');
  });

  it('applies valid per-attachment conditions', async () => {
    const pod = await bed.addPod([{ hostPort: 9700, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'cond', 80);
    await bed.delPod(pod);
    bed.writeConflist({ backend: 'iptables', conditionsV4: ['!', '-s', `${CLIENT_V4}/32`] });
    const cond = await bed.addPod([{ hostPort: 9701, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(cond.netns, 'cond', 80);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9701, { timeoutMs: 800 })).toBeUndefined();
    expect(reply(await bed.request(bed.node, 'tcp', NODE_V4, 9701)).tag).toBe('cond');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9701)).tag).toBe('cond');
    expect((await bed.checkPod(cond)).code).toBe(0);
    await bed.delPod(cond);
    bed.writeConflist({ backend: 'iptables' });
    expect(await natSave(bed)).not.toContain(cond.id);
  });

  it('STATUS succeeds with iptables usable; the nftables backend rejects externalSetMarkChain (code 7)', async () => {
    const res = await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({}, '1.1.0'));
    expect(res.code).toBe(0);
    const wrong = await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({ backend: 'nftables', externalSetMarkChain: 'KUBE-MARK-MASQ' }, '1.1.0'));
    expect(wrong.code).toBe(1);
    expect(wrong.json?.code).toBe(7);
    expect(String(wrong.json?.msg)).toContain('iptables-specific options [externalSetMarkChain]');
  });
});

describe('iptables backend: 50 pods added and deleted concurrently', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'iptables' } });
  });
  afterAll(() => bed?.destroy());

  it('every mapping works while they live and nothing is left after', async () => {
    const pods = await Promise.all(Array.from({ length: 50 }, (_, i) => bed.addPod([{ hostPort: 10000 + i, containerPort: 80, protocol: 'tcp' }])));
    const save = await natSave(bed);
    for (const p of pods) expect(save).toContain(p.id);
    expect(dnChains(save)).toHaveLength(50);
    await Promise.all(pods.map((p, i) => bed.serve(p.netns, `p${i}`, 80)));
    const replies = await Promise.all(pods.map((_, i) => bed.request(bed.client, 'tcp', NODE_V4, 10000 + i, { timeoutMs: 5000 })));
    replies.forEach((r, i) => expect(reply(r).tag).toBe(`p${i}`));
    const dels = await Promise.all(pods.map((p) => bed.delPod(p)));
    for (const d of dels) expect(d.code).toBe(0);
    const after = await natSave(bed);
    expect(dnChains(after)).toEqual([]);
    expect(after).not.toContain('dnat name');
  });
});

describe('iptables backend: legacy flavour when kube-proxy\'s rules are in iptables-legacy', () => {
  let bed: TestBed;
  let pod: Pod;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'iptables' } });
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-N', 'KUBE-SERVICES']);
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-I', 'PREROUTING', '1', '-j', 'KUBE-SERVICES']);
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-I', 'OUTPUT', '1', '-j', 'KUBE-SERVICES']);
    pod = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'legacy', 80);
  });
  afterAll(() => bed?.destroy());

  it('writes into iptables-legacy only, after the KUBE-SERVICES jump', async () => {
    const legacy = await natSave(bed, 'legacy');
    expect(legacy).toContain(pod.id);
    expect(legacy).toMatch(/-A PREROUTING -j KUBE-SERVICES\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT/);
    expect(await natSave(bed, 'nft')).not.toContain('CNI-');
  });

  it('forwards client, node, localhost and hairpin traffic', async () => {
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'legacy', peer: CLIENT_V4 });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'legacy', peer: CLIENT_V6 });
    expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080)).tag).toBe('legacy');
    expect(reply(await bed.request(pod.netns, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'legacy', peer: '10.244.0.1' });
  });

  it('stays in legacy (never splits) and CHECK, DEL and STATUS work there', async () => {
    const second = await bed.addPod([{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }]);
    expect(await natSave(bed, 'legacy')).toContain(second.id);
    expect(await natSave(bed, 'nft')).not.toContain('CNI-');
    expect((await bed.checkPod(pod)).code).toBe(0);
    expect((await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({}, '1.1.0'))).code).toBe(0);
    await bed.delPod(second, { withMappings: false });
    await bed.delPod(pod);
    const legacy = await natSave(bed, 'legacy');
    expect(dnChains(legacy)).toEqual([]);
    expect(legacy).not.toContain('dnat name');
    expect(legacy).toContain('-A PREROUTING -j KUBE-SERVICES');
  });

  it('afterServices: CHECK fails when our jump sits above KUBE-SERVICES, and ADD moves it below', async () => {
    bed.writeConflist({ backend: 'iptables', afterServices: true });
    const p = await bed.addPod([{ hostPort: 8082, containerPort: 80, protocol: 'tcp' }]);
    expect((await bed.checkPod(p)).code).toBe(0);
    // kube-proxy restarts: its jump is deleted and comes back at position 1... then ours is moved above it.
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-I', 'PREROUTING', '1', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
    const bad = await bed.checkPod(p);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/comes before kube-proxy's KUBE-SERVICES jump/);
    expect((await reAdd(bed, p)).code).toBe(0);
    expect((await bed.checkPod(p)).code).toBe(0);
    expect(await natSave(bed, 'legacy')).toMatch(/-A PREROUTING -j KUBE-SERVICES\n-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT\n/);
    await bed.delPod(p);
    bed.writeConflist({ backend: 'iptables' });
  });
});

describe('iptables backend: attachments made by the reference plugin (after swapping the binary)', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ plugin: REFERENCE_PORTMAP, portmap: { backend: 'iptables' } });
  });
  afterAll(() => bed?.destroy());

  it('are checked, deleted and garbage-collected by ours, leaving no CNI-DN chain or rule', async () => {
    const a = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8053, containerPort: 53, protocol: 'udp' }]);
    const b = await bed.addPod([{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }]);
    const c = await bed.addPod([{ hostPort: 8091, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(a.netns, 'refA', 80);
    await bed.serve(b.netns, 'refB', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('refA');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8090)).tag).toBe('refB');
    const made = await natSave(bed);
    expect(dnChains(made)).toHaveLength(3);
    expect(made).toContain(`dnat name: \\"testnet\\" id: \\"${a.id}\\"`);

    // The operator swaps the binary.
    rmSync(join(bed.binDir, 'portmap'));
    symlinkSync(PLUGIN, join(bed.binDir, 'portmap'));

    expect((await bed.checkPod(a)).code).toBe(0);
    expect((await bed.delPod(a)).code).toBe(0);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
    expect((await bed.delPod(c, { withMappings: false })).code).toBe(0);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8090)).tag).toBe('refB');
    // bed.plugin() would exec the reference (the bed's `plugin` option): run ours as the runtime now does.
    const gc = await inNs(bed.node, [PLUGIN], {
      input: JSON.stringify({ ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': [] }),
      env: { ...process.env, CNI_COMMAND: 'GC', CNI_PATH: bed.binDir },
      ok: [1],
    });
    expect(gc.code).toBe(0);
    expect(gc.stderr).toMatch(/GC: removing 1 stale hostPort chain\(s\) of network testnet from the IPv4 nat table, iptables flavour nft/);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8090, { timeoutMs: 800 })).toBeUndefined();
    const left = await natSave(bed);
    expect(dnChains(left)).toEqual([]);
    expect(left).not.toContain('dnat name');
    expect(dnChains(await natSave(bed, 'legacy'))).toEqual([]);
    // Ours adds to the same layout afterwards.
    const d = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(d.netns, 'ours', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('ours');
    await bed.delPod(d);
    expect(dnChains(await natSave(bed))).toEqual([]);
  });
});

describe('swapping the binary on a conflist without "backend" (the reference defaults to iptables, ours to nftables)', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ plugin: REFERENCE_PORTMAP });
  });
  afterAll(() => bed?.destroy());

  it('DEL and GC by ours also remove the reference plugin\'s iptables rules, new pods go to nftables', async () => {
    const a = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    const b = await bed.addPod([{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(b.netns, 'refB', 80);
    expect(dnChains(await natSave(bed))).toHaveLength(2);
    rmSync(join(bed.binDir, 'portmap'));
    symlinkSync(PLUGIN, join(bed.binDir, 'portmap'));

    const fresh = await bed.addPod([{ hostPort: 8100, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(fresh.netns, 'fresh', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8100)).tag).toBe('fresh');
    expect((await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout).toContain(fresh.id);

    expect((await bed.delPod(a)).code).toBe(0);
    expect(dnChains(await natSave(bed))).toHaveLength(1);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();

    const gc = await inNs(bed.node, [PLUGIN], {
      input: JSON.stringify({ ...bed.portmapConfig({}, '1.1.0'), 'cni.dev/valid-attachments': [{ containerID: fresh.id, ifname: 'eth0' }] }),
      env: { ...process.env, CNI_COMMAND: 'GC', CNI_PATH: bed.binDir },
      ok: [1],
    });
    expect(gc.code).toBe(0);
    expect(dnChains(await natSave(bed))).toEqual([]);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8090, { timeoutMs: 800 })).toBeUndefined();
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8100)).tag).toBe('fresh');
    await bed.delPod(fresh);
  });
});
