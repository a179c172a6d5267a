/**
 * Issue 5: hostPorts against a simulated kube-proxy (test/integration/kube-proxy-sim.ts), with real
 * traffic. With `afterServices` + `serviceCIDRs` a hostPort must not capture ClusterIP or NodePort
 * traffic, whatever kube-proxy's mode and whether kube-proxy's rules came before or after the pod's ADD;
 * with the options off, the capture really happens.
 *
 * The scene: a Service backend pod ("service" on :3306), a client pod, and a hostPort pod ("hostport" on
 * :3306) mapping hostPort 3306 (the Service's port, not a NodePort) and hostPort 30080 (= the NodePort).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_V4, type Pod, ROOT, TestBed, inNs, reply } from './harness.js';
import { CLUSTER_IP, KUBE_PROXY_MODES, type KubeProxyMode, KubeProxySim, NODE_PORT, SERVICE_CIDR, SERVICE_PORT, isIpvs } from './kube-proxy-sim.js';

type BackendName = 'nftables' | 'iptables';
type Order = 'before' | 'after';

/** The shipped Kubernetes conflist: its portmap settings are the ones every scenario below runs with. */
const K8S_CONFLIST = JSON.parse(readFileSync(join(ROOT, 'conflist', 'kubernetes.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> };
const SAFE = Object.fromEntries(Object.entries(K8S_CONFLIST.plugins.find((p) => p.type === 'portmap')!).filter(([k]) => k !== 'type' && k !== 'capabilities'));
if (SAFE.afterServices !== true || !(SAFE.serviceCIDRs as string[]).includes(SERVICE_CIDR)) {
  throw new Error(`conflist/kubernetes.conflist must set afterServices and a serviceCIDRs range holding the simulated ${SERVICE_CIDR}`);
}


interface Scene {
  bed: TestBed;
  kp: KubeProxySim;
  hostPod: Pod;
  svcPod: Pod;
  clientPod: Pod;
}

/**
 * Builds the scene (kube-proxy's rules go in before or after the hostPort pod's ADD), runs `body` and
 * tears the scene down, also when tests run concurrently.
 */
async function withScene(backend: BackendName | undefined, mode: KubeProxyMode, order: Order, portmap: Record<string, unknown>, body: (s: Scene) => Promise<void>): Promise<void> {
  const s = await scene(backend, mode, order, portmap);
  try {
    await body(s);
  } finally {
    s.kp.stop();
    await s.bed.destroy();
  }
}

async function scene(backend: BackendName | undefined, mode: KubeProxyMode, order: Order, portmap: Record<string, unknown>): Promise<Scene> {
  const bed = await TestBed.create({ portmap: { ...(backend ? { backend } : {}), ...portmap } });
  if (portmap === K8S_CONFLIST) {
    // The shipped conflist as is, but with host-local's state inside the bed.
    const conf = structuredClone(K8S_CONFLIST) as { plugins: Array<{ ipam?: Record<string, unknown> }> };
    conf.plugins[0]!.ipam!.dataDir = join(bed.dir, 'ipam');
    writeFileSync(bed.conflist, JSON.stringify(conf));
  }
  const partial: Partial<Scene> = { bed };
  try {
    const svcPod = await bed.addPod([]);
    const clientPod = await bed.addPod([]);
    await bed.serve(svcPod.netns, 'service', SERVICE_PORT);
    const install = () => KubeProxySim.install(bed, { mode, endpoint: svcPod.ip4! });
    let kp = order === 'before' ? await install() : undefined;
    if (kp) partial.kp = kp;
    const hostPod = await bed.addPod([
      { hostPort: SERVICE_PORT, containerPort: SERVICE_PORT, protocol: 'tcp' },
      { hostPort: NODE_PORT, containerPort: SERVICE_PORT, protocol: 'tcp' },
    ]);
    await bed.serve(hostPod.netns, 'hostport', SERVICE_PORT);
    kp ??= await install();
    return { bed, kp, hostPod, svcPod, clientPod };
  } catch (err) {
    partial.kp?.stop();
    await bed.destroy();
    throw err;
  }
}

const tag = async (p: Promise<string | undefined>): Promise<string | undefined> => reply(await p).tag;

const cases = KUBE_PROXY_MODES.flatMap((mode) => (['before', 'after'] as const).map((order) => ({ mode, order })));

/**
 * Who answers on the NodePort that is also a hostPort. The Service, except in two limits that neither
 * ordering nor Service CIDRs can lift:
 * - ipvs mode: a NodePort gets no NAT binding at all (KUBE-NODE-PORT only marks for masquerade; IPVS takes
 *   the packet in LOCAL_IN, after every prerouting DNAT), so the hostPort DNAT wins, in both backends, as
 *   with the reference plugin. Keep hostPorts out of the NodePort range.
 * - the iptables backend beside kube-proxy in nftables mode: iptables nat chains (either flavour) hook at
 *   the fixed priority -100, like kube-proxy's nat chains; among equals the most recently registered runs
 *   first, so when our nat table is created after kube-proxy's (pod ADD after kube-proxy started) our DNAT
 *   binds first. Use the nftables backend (hooked at dstnat+10) with an nftables kube-proxy.
 */
function nodePortWinner(backend: BackendName | undefined, mode: KubeProxyMode, order: Order): 'service' | 'hostport' {
  if (isIpvs(mode)) return 'hostport';
  if (backend === 'iptables' && mode === 'nftables' && order === 'before') return 'hostport';
  return 'service';
}

/** What every scenario must show with `afterServices` + `serviceCIDRs`. */
async function servicesWin({ bed, clientPod }: Scene, nodePort: 'service' | 'hostport'): Promise<void> {
  // ClusterIP:3306 from the node (OUTPUT) and from a pod (PREROUTING) reaches the Service.
  expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('service');
  expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('service');
  // The NodePort that is also a hostPort reaches the Service (see nodePortWinner), from the uplink and the node.
  expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, NODE_PORT))).toBe(nodePort);
  expect(await tag(bed.request(bed.node, 'tcp', NODE_V4, NODE_PORT))).toBe(nodePort);
  // A hostPort that is not a NodePort (equal to the Service port) still reaches the hostPort pod.
  expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, SERVICE_PORT))).toBe('hostport');
  expect(await tag(bed.request(clientPod.netns, 'tcp', NODE_V4, SERVICE_PORT))).toBe('hostport');
}

describe.each(['nftables', 'iptables'] as const)('%s backend, afterServices + serviceCIDRs, against a simulated kube-proxy', (backend) => {
  it.concurrent.each(cases)(
    'kube-proxy $mode installed $order the ADD: Services win, the hostPort still works',
    ({ mode, order }) => withScene(backend, mode, order, SAFE, (s) => servicesWin(s, nodePortWinner(backend, mode, order))),
  );
});

it('conflist/kubernetes.conflist as shipped (default backend) keeps Services first under ipvs', () =>
  withScene(undefined, 'ipvs-nft', 'before', K8S_CONFLIST, (s) => servicesWin(s, nodePortWinner(undefined, 'ipvs-nft', 'before'))));

describe.concurrent('the options matter: without them a hostPort captures Service traffic', () => {
  it('nftables backend, kube-proxy ipvs, options off: ClusterIP:3306 goes to the hostPort pod', () =>
    withScene('nftables', 'ipvs-nft', 'before', {}, async ({ bed, clientPod }) => {
      expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
      expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
    }));

  it('nftables backend, kube-proxy ipvs, afterServices alone: still captured (the ipvs ACCEPT binds nothing)', () =>
    withScene('nftables', 'ipvs-legacy', 'after', { afterServices: true }, async ({ bed, clientPod }) => {
      expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
      expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
    }));

  // Every NAT chain of iptables (either flavour) and kube-proxy's nft table hooks at -100 like ours by
  // default; among equal priorities the most recently registered runs first, so a hostPort table created
  // after kube-proxy's rules (node reboot, table re-created) binds first.
  it.each(['iptables-legacy', 'iptables-nft', 'nftables'] as const)(
    'nftables backend, kube-proxy %s set up before the ADD, options off: the NodePort goes to the hostPort pod',
    (mode) =>
      withScene('nftables', mode, 'before', {}, async ({ bed }) => {
        expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, NODE_PORT))).toBe('hostport');
        expect(await tag(bed.request(bed.node, 'tcp', NODE_V4, NODE_PORT))).toBe('hostport');
        // ClusterIPs are not local addresses in these modes: the hostPort rule does not match them.
        expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('service');
      }),
  );

  // The Talos case: kube-proxy (ipvs) started after the pod's ADD in iptables-legacy, our rules already in
  // iptables-nft (they never split across flavours): KUBE-SERVICES' ACCEPT ends only the legacy table.
  it('iptables backend, kube-proxy ipvs in the other flavour (legacy, after the ADD), options off: ClusterIP:3306 goes to the hostPort pod', () =>
    withScene('iptables', 'ipvs-legacy', 'after', {}, async ({ bed, clientPod }) => {
      expect(await flavoursWithOurJump(bed)).toEqual(['nft']);
      expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
      expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
    }));

  it('nftables backend: opting in on a live node (options added to the conflist) takes effect at the next ADD', () =>
    withScene('nftables', 'ipvs-nft', 'before', {}, async ({ bed, clientPod, hostPod }) => {
      expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, NODE_PORT))).toBe('hostport');
      expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('hostport');
      bed.writeConflist({ backend: 'nftables', ...SAFE });
      const other = await bed.addPod([{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }]);
      expect(await bed.ruleset()).toMatch(/hook prerouting priority dstnat \+ 10;/);
      expect(await tag(bed.request(bed.node, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('service');
      expect(await tag(bed.request(clientPod.netns, 'tcp', CLUSTER_IP, SERVICE_PORT))).toBe('service');
      expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, SERVICE_PORT))).toBe('hostport');
      // CHECK now expects the new placement, for the old pod as for the new one.
      expect((await bed.checkPod(hostPod)).code).toBe(0);
      expect((await bed.checkPod(other)).code).toBe(0);
    }));
});

/** Splits an `iptables -S` line into arguments, honouring double quotes (comments). */
function words(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

/** The iptables flavours whose nat PREROUTING jumps to CNI-HOSTPORT-DNAT in the node namespace. */
async function flavoursWithOurJump(bed: TestBed): Promise<Array<'legacy' | 'nft'>> {
  const out: Array<'legacy' | 'nft'> = [];
  for (const f of ['legacy', 'nft'] as const) {
    const res = await inNs(bed.node, [`iptables-${f}`, '-w', '-t', 'nat', '-S', 'PREROUTING'], { ok: [1] });
    if (/-j CNI-HOSTPORT-DNAT\b/.test(res.stdout)) out.push(f);
  }
  return out;
}

/** Positions (1-based) of the KUBE-SERVICES jump and of ours in a nat base chain. */
async function jumpOrder(kp: KubeProxySim, chain: string): Promise<{ kube: number; ours: number }> {
  const rules = await kp.natRules(chain);
  const at = (target: string) => rules.findIndex((r) => words(r).join(' ').endsWith(`-j ${target}`)) + 1;
  return { kube: at('KUBE-SERVICES'), ours: at('CNI-HOSTPORT-DNAT') };
}

/** Moves our jump in a nat base chain to position 1, above KUBE-SERVICES, by hand. */
async function moveOurJumpFirst(kp: KubeProxySim, chain: string): Promise<void> {
  const { ours } = await jumpOrder(kp, chain);
  const rule = (await kp.natRules(chain))[ours - 1]!;
  const spec = words(rule).slice(2);
  await inNs(kp.bed.node, [kp.iptablesCmd(), '-w', '-t', 'nat', '-D', chain, String(ours)]);
  await inNs(kp.bed.node, [kp.iptablesCmd(), '-w', '-t', 'nat', '-I', chain, '1', ...spec]);
}

describe.concurrent('iptables backend: the entry jumps against KUBE-SERVICES', () => {
  it.each(['iptables-legacy', 'iptables-nft'] as const)(
    'kube-proxy %s: our jumps follow KUBE-SERVICES in the same flavour; CHECK fails once the order is broken; the next ADD restores it',
    (mode) =>
      withScene('iptables', mode, 'before', SAFE, async (s) => {
        const { bed, kp, hostPod } = s;
        expect(await flavoursWithOurJump(bed), 'the hostPort rules must live in kube-proxy\'s iptables flavour').toEqual([kp.flavour]);
        for (const chain of ['PREROUTING', 'OUTPUT']) {
          const o = await jumpOrder(kp, chain);
          expect(o.kube, `${chain}: KUBE-SERVICES jump`).toBeGreaterThan(0);
          expect(o.ours, `${chain}: our jump after KUBE-SERVICES`).toBeGreaterThan(o.kube);
        }
        expect((await bed.checkPod(hostPod)).code).toBe(0);

        for (const chain of ['PREROUTING', 'OUTPUT']) await moveOurJumpFirst(kp, chain);
        const broken = await bed.checkPod(hostPod);
        expect(broken.code).toBe(1);
        expect(broken.stderr).toMatch(/KUBE-SERVICES|order/i);
        // The broken order is the hijack: the NodePort now goes to the hostPort pod.
        expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, NODE_PORT))).toBe('hostport');

        // The next ADD on the node (any pod) puts our jumps back after KUBE-SERVICES.
        const other = await bed.addPod([{ hostPort: 8081, containerPort: 80, protocol: 'tcp' }]);
        for (const chain of ['PREROUTING', 'OUTPUT']) {
          const o = await jumpOrder(kp, chain);
          expect(o.ours, `${chain}: our jump after KUBE-SERVICES again`).toBeGreaterThan(o.kube);
        }
        expect((await bed.checkPod(hostPod)).code).toBe(0);
        expect((await bed.checkPod(other)).code).toBe(0);
        expect(await tag(bed.request(bed.client, 'tcp', NODE_V4, NODE_PORT))).toBe('service');
        await servicesWin(s, nodePortWinner('iptables', mode, 'before'));
      }),
  );

  it.each(['iptables-legacy', 'iptables-nft'] as const)(
    'kube-proxy %s, options off: the reference placement (appended, so after a KUBE-SERVICES jump that was there first)',
    (mode) =>
      withScene('iptables', mode, 'before', {}, async ({ kp }) => {
        for (const chain of ['PREROUTING', 'OUTPUT']) {
          const o = await jumpOrder(kp, chain);
          expect(o.ours).toBeGreaterThan(o.kube);
          expect(o.ours).toBe((await kp.natRules(chain)).length);
        }
      }),
  );
});
