/**
 * containerd as the caller (issue #17): Debian's containerd 1.6 with its CRI plugin runs in the test
 * bed's node namespace and attaches pods through bridge + host-local + our portmap, driven over CRI as
 * a kubelet would (RunPodSandbox with port mappings, PodSandboxStatus, StopPodSandbox,
 * RemovePodSandbox). Checked with real traffic from the client namespace into an echo server inside
 * the pod's namespace (TCP, UDP, IPv6, a hostIP mapping, node -> 127.0.0.1), and by what containerd
 * sent the plugin (recorded by a stand-in, cri/recorder.ts): capitalised port-mapping keys, and two
 * DELs per pod, the second with CNI_NETNS="" and no prevResult. Both backends, bundle and standalone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V4_B, NODE_V6, PLUGIN, type PortMappingInput, TestBed, inNs, reply } from './harness.js';
import { CONTAINERD, Containerd, type CriPod } from './cri/containerd.js';
import { type RecordedCall, describeCall } from './cri/recorder.js';
import { STANDALONE } from './standalone.js';

const root = process.getuid?.() === 0;
const installed = existsSync(CONTAINERD) && existsSync('/usr/bin/ctr') && existsSync('/bin/busybox');
const skip = !root || !installed;
if (skip) {
  console.warn(`SKIPPED containerd.test.ts: ${!root ? 'needs root' : `needs ${CONTAINERD}, ctr and /bin/busybox (apt-get install containerd busybox-static; scripts/setup.sh installs them)`}`);
}

type Backend = 'nftables' | 'iptables';

interface Variant {
  label: string;
  backend: Backend;
  plugin: string;
}

const VARIANTS: Variant[] = [
  { label: 'nftables backend, dist/portmap', backend: 'nftables', plugin: PLUGIN },
  { label: 'iptables backend, dist/portmap', backend: 'iptables', plugin: PLUGIN },
  { label: 'nftables backend, dist/portmap-standalone', backend: 'nftables', plugin: STANDALONE },
  { label: 'iptables backend, dist/portmap-standalone', backend: 'iptables', plugin: STANDALONE },
];

const MAPPINGS: PortMappingInput[] = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 8053, containerPort: 53, protocol: 'udp' },
  { hostPort: 8081, containerPort: 81, protocol: 'tcp', hostIP: NODE_V4_B },
];

/** What containerd sends for MAPPINGS: capitalised keys, lower-case protocol, an empty HostIP when unset. */
const SENT = [
  { HostPort: 8080, ContainerPort: 80, Protocol: 'tcp', HostIP: '' },
  { HostPort: 8053, ContainerPort: 53, Protocol: 'udp', HostIP: '' },
  { HostPort: 8081, ContainerPort: 81, Protocol: 'tcp', HostIP: NODE_V4_B },
];

interface Stdin {
  name?: string;
  type?: string;
  runtimeConfig?: { portMappings?: unknown[] };
  prevResult?: unknown;
}

const stdinOf = (c: RecordedCall): Stdin => JSON.parse(c.stdin) as Stdin;
const callsOf = (ctd: Containerd, pod: CriPod, command: string) => ctd.calls().filter((c) => c.env.CNI_CONTAINERID === pod.id && c.env.CNI_COMMAND === command);

/** Every recorded call of the pod exited 0 (the message shows a failed call's stdin, env and output). */
function expectAllSucceeded(calls: RecordedCall[]): void {
  for (const c of calls) expect(c.code, describeCall(c)).toBe(0);
}

/** `portmap list --json` in the node namespace: every hostPort forward the kernel holds (both backends). */
async function listed(bed: TestBed): Promise<Array<{ hostPort: number; containerID?: string; podIP: string }>> {
  const res = await inNs(bed.node, [PLUGIN, 'list', '--json']);
  return (JSON.parse(res.stdout) as { mappings: Array<{ hostPort: number; containerID?: string; podIP: string }> }).mappings;
}

/** The backend's own state in the node namespace: the forward maps' elements, or the nat table's DNAT chains. */
async function forwardState(bed: TestBed, backend: Backend): Promise<{ forwards: number; text: string }> {
  if (backend === 'nftables') {
    const res = await inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap'], { ok: [1] });
    if (res.code !== 0) return { forwards: 0, text: res.stderr };
    const items = (JSON.parse(res.stdout) as { nftables: Array<{ map?: { name: string; elem?: unknown[] } }> }).nftables;
    const forwards = items.reduce((n, i) => n + (i.map && /^host(ip)?ports/.test(i.map.name) ? (i.map.elem?.length ?? 0) : 0), 0);
    return { forwards, text: res.stdout };
  }
  const text = (await Promise.all(['iptables-save', 'ip6tables-save'].map((t) => inNs(bed.node, [t, '-t', 'nat'])))).map((r) => r.stdout).join('\n');
  return { forwards: (text.match(/-j DNAT /g) ?? []).length, text };
}

describe.skipIf(skip).each(VARIANTS)('containerd (CRI) as the caller: $label', (v) => {
  let bed: TestBed;
  let ctd: Containerd;
  let pod: CriPod;

  beforeAll(async () => {
    if (v.plugin === STANDALONE && !existsSync(STANDALONE)) throw new Error(`${STANDALONE} is missing: npm run build builds it`);
    bed = await TestBed.create({ portmap: { backend: v.backend } });
    // The log as an operator turns it on: in the conflist (containerd passes plugins no environment of ours).
    ctd = await Containerd.start(bed, { plugin: v.plugin, portmap: { backend: v.backend, logFile: join(bed.dir, 'log', 'portmap.log'), logFormat: 'json' } });
  });
  afterAll(async () => {
    await ctd?.destroy();
    await bed?.destroy();
  });

  it('RunPodSandbox: the pod is reachable on its hostPorts (TCP, UDP, IPv6, hostIP, 127.0.0.1), and only there', async () => {
    pod = await ctd.runPod('web', MAPPINGS);
    expect(pod.status.state).toBe('SANDBOX_READY');
    expect(pod.ip4).toMatch(/^10\.244\.0\./);
    expect(pod.ip6).toMatch(/^fd00:244::/);
    for (const port of [80, 53, 81]) await ctd.serve(pod, 'web', port);

    const [v4, v6, udp4, udp6, hostIP, otherAddr, local] = await Promise.all([
      bed.request(bed.client, 'tcp', NODE_V4, 8080),
      bed.request(bed.client, 'tcp', NODE_V6, 8080),
      bed.request(bed.client, 'udp', NODE_V4, 8053),
      bed.request(bed.client, 'udp', NODE_V6, 8053),
      bed.request(bed.client, 'tcp', NODE_V4_B, 8081),
      bed.request(bed.client, 'tcp', NODE_V4, 8081, { timeoutMs: 800 }),
      bed.request(bed.node, 'tcp', '127.0.0.1', 8080),
    ]);
    expect(reply(v4)).toEqual({ tag: 'web', peer: CLIENT_V4 });
    expect(reply(v6)).toEqual({ tag: 'web', peer: CLIENT_V6 });
    expect(reply(udp4)).toEqual({ tag: 'web', peer: CLIENT_V4 });
    expect(reply(udp6)).toEqual({ tag: 'web', peer: CLIENT_V6 });
    expect(reply(hostIP)).toEqual({ tag: 'web', peer: CLIENT_V4 });
    expect(otherAddr, 'the hostIP mapping must not be forwarded on the node\'s other address').toBeUndefined();
    expect(reply(local).tag).toBe('web');

    const rows = (await listed(bed)).filter((r) => r.containerID === pod.id);
    // 8080 and 8053 for both families, 8081 on NODE_V4_B only.
    expect(rows.map((r) => r.hostPort).sort()).toEqual([8053, 8053, 8080, 8080, 8081]);
  });

  it('containerd sent ADD with capitalised port-mapping keys, an empty HostIP, the pod in CNI_ARGS, and a prevResult', () => {
    const adds = callsOf(ctd, pod, 'ADD');
    expect(adds).toHaveLength(1);
    expectAllSucceeded(adds);
    const add = adds[0]!;
    const stdin = stdinOf(add);
    expect(stdin.type).toBe('portmap');
    expect(stdin.name).toBe(ctd.networkName);
    expect(stdin.runtimeConfig?.portMappings).toEqual(SENT);
    expect(stdin.prevResult).toBeDefined();
    expect(add.env.CNI_NETNS).toBe(pod.netnsPath);
    expect(add.env.CNI_IFNAME).toBe('eth0');
    expect(add.env.CNI_ARGS?.split(';').sort()).toEqual(
      ['IgnoreUnknown=1', 'K8S_POD_NAMESPACE=default', 'K8S_POD_NAME=web', `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`, `K8S_POD_UID=${bed.prefix}-web-uid`].sort(),
    );
  });

  it('StopPodSandbox: DEL with the netns and prevResult succeeds, and the forwards are gone', async () => {
    await ctd.stopPod(pod.id);
    const dels = callsOf(ctd, pod, 'DEL');
    expect(dels).toHaveLength(1);
    expectAllSucceeded(dels);
    expect(dels[0]!.env.CNI_NETNS).toBe(pod.netnsPath);
    expect(stdinOf(dels[0]!).prevResult).toBeDefined();
    expect(stdinOf(dels[0]!).runtimeConfig?.portMappings).toEqual(SENT);

    const state = await forwardState(bed, v.backend);
    expect(state.forwards, state.text).toBe(0);
    expect(state.text).not.toContain(pod.id);
    expect(await listed(bed)).toEqual([]);
    const [tcp, hostIP] = await Promise.all([
      bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 }),
      bed.request(bed.client, 'tcp', NODE_V4_B, 8081, { timeoutMs: 800 }),
    ]);
    expect(tcp).toBeUndefined();
    expect(hostIP).toBeUndefined();
    ctd.stopServers();
  });

  it('RemovePodSandbox: the second DEL (CNI_NETNS="", no prevResult, the full mappings) succeeds and leaves nothing', async () => {
    await ctd.removePod(pod.id);
    const dels = callsOf(ctd, pod, 'DEL');
    expect(dels).toHaveLength(2);
    expectAllSucceeded(dels);
    const second = dels[1]!;
    expect(second.env.CNI_NETNS).toBe('');
    expect(stdinOf(second).prevResult).toBeUndefined();
    expect(stdinOf(second).runtimeConfig?.portMappings).toEqual(SENT);

    const state = await forwardState(bed, v.backend);
    expect(state.forwards, state.text).toBe(0);
    expect(state.text).not.toContain(pod.id);
    expect(await listed(bed)).toEqual([]);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
  });

  it('a second pod reusing the host ports is reachable, and is removed as cleanly', async () => {
    const next = await ctd.runPod('web2', MAPPINGS.slice(0, 2));
    await ctd.serve(next, 'web2', 80);
    await ctd.serve(next, 'web2', 53);
    const [tcp, udp6] = await Promise.all([
      bed.request(bed.client, 'tcp', NODE_V4, 8080),
      bed.request(bed.client, 'udp', NODE_V6, 8053),
    ]);
    expect(reply(tcp)).toEqual({ tag: 'web2', peer: CLIENT_V4 });
    expect(reply(udp6)).toEqual({ tag: 'web2', peer: CLIENT_V6 });

    await ctd.stopPod(next.id);
    ctd.stopServers();
    await ctd.removePod(next.id);
    const calls = ctd.calls().filter((c) => c.env.CNI_CONTAINERID === next.id);
    expect(calls.map((c) => c.env.CNI_COMMAND)).toEqual(['ADD', 'DEL', 'DEL']);
    expectAllSucceeded(calls);
    const state = await forwardState(bed, v.backend);
    expect(state.forwards, state.text).toBe(0);
    expect(await listed(bed)).toEqual([]);
  });

  it('the log file of the conflist has one line per call, naming the pod, and no error', () => {
    const lines = readFileSync(join(bed.dir, 'log', 'portmap.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const calls = lines.filter((l) => l.verb !== undefined);
    const of = (name: string) => calls.filter((l) => l.pod === `default/${name}`).map((l) => [l.verb, l.backend, l.outcome, l.ifname]);
    expect(of('web')).toEqual([['ADD', v.backend, 'ok', 'eth0'], ['DEL', v.backend, 'ok', 'eth0'], ['DEL', v.backend, 'ok', 'eth0']]);
    expect(of('web2')).toEqual([['ADD', v.backend, 'ok', 'eth0'], ['DEL', v.backend, 'ok', 'eth0'], ['DEL', v.backend, 'ok', 'eth0']]);
    const add = calls.find((l) => l.pod === 'default/web' && l.verb === 'ADD')!;
    expect(add.containerID).toBe(pod.id);
    expect(add.mappings).toBe(`8080->80/tcp,8053->53/udp,[${NODE_V4_B}]:8081->81/tcp`);
    expect(lines.filter((l) => l.level === 'error' || l.level === 'warn'), JSON.stringify(lines)).toEqual([]);
  });
});
