/**
 * The iptables backend against real traffic: the nftables.test.ts scenarios with `backend: "iptables"`,
 * a subset with the legacy flavour (chosen because kube-proxy's KUBE-SERVICES is in iptables-legacy), and
 * attachments made by the reference Go plugin (/usr/lib/cni/portmap) then deleted and GC'd by ours.
 * Every rule lives in the test bed's node namespace.
 */
import { rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendScenarios } from './backend-scenarios.js';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V6, PLUGIN, type Pod, REFERENCE_PORTMAP, TestBed, inNs, reply } from './harness.js';

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

backendScenarios('iptables', {
  state: (bed) => natSave(bed),
  owned: /dnat name|CNI-DN-/,
  traffic: (ctx) => {
    it('writes the reference layout in the nf_tables flavour (the iptables on PATH), nothing in legacy', async () => {
      const { bed, pod } = ctx();
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

    it('CHECK passes, fails once CNI-HOSTPORT-DNAT has been flushed, and a new ADD repairs it', async () => {
      const { bed, pod } = ctx();
      expect((await bed.checkPod(pod)).code).toBe(0);
      await inNs(bed.node, ['iptables-nft', '-t', 'nat', '-F', 'CNI-HOSTPORT-DNAT']);
      const broken = await bed.checkPod(pod);
      expect(broken.code).toBe(1);
      expect(broken.stderr).toMatch(/CNI-HOSTPORT-DNAT has no entry rule/);
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
      expect((await reAdd(bed, pod)).code).toBe(0);
      expect((await bed.checkPod(pod)).code).toBe(0);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
      // A missing shared jump: CHECK restores every live attachment from its record, then checks (issue #13).
      await inNs(bed.node, ['iptables-nft', '-t', 'nat', '-D', 'PREROUTING', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']);
      const healed = await bed.checkPod(pod);
      expect(healed.code).toBe(0);
      expect(healed.stderr).toMatch(/restoring \d+ attachment\(s\) from their records/);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
    });
  },
  ownership: (getBed) => {
    it('refuses iptables conditions that would add a target or a command (code 7)', async () => {
      const bed = getBed();
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
      const bed = getBed();
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

    it('the nftables backend rejects externalSetMarkChain (code 7)', async () => {
      const bed = getBed();
      const wrong = await bed.plugin({ CNI_COMMAND: 'STATUS' }, bed.portmapConfig({ backend: 'nftables', externalSetMarkChain: 'KUBE-MARK-MASQ' }, '1.1.0'));
      expect(wrong.code).toBe(1);
      expect(wrong.json?.code).toBe(7);
      expect(String(wrong.json?.msg)).toContain('iptables-specific options [externalSetMarkChain]');
    });
  },
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
