/**
 * `portmap list` and `portmap doctor` against a real node namespace: every doctor finding is provoked,
 * seen, fixed and seen gone; `list` is compared with the traffic that actually flows; both run as a
 * user without privileges say so (exit 4) instead of reporting an empty, healthy node.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_V4, NODE_V4_B, PLUGIN, type Pod, type PortMappingInput, REFERENCE_PORTMAP, ROOT, TestBed, inNs, reply, sh } from './harness.js';
import { STANDALONE } from './standalone.js';

interface Finding {
  id: string;
  severity: string;
  message: string;
  fix: string;
  commands?: string[];
  where?: { file: string; plugin?: number; key?: string; suggestion?: string };
}
interface Row {
  origin: string;
  source: string;
  family: number;
  protocol: string;
  hostIP?: string;
  hostPort: number;
  podIP: string;
  containerPort: number;
  containerID?: string;
  network?: string;
}

interface DoctorDoc {
  healthy: boolean;
  complete: boolean;
  findings: Finding[];
  notes: string[];
  unreadable: Array<{ what: string; source: string; error: string; permission: boolean; rules: boolean }>;
  rerun?: string;
}

/** doctor --json in the node namespace; exit 4 (not everything read) is an error unless `ok` has it. */
async function doctor(bed: TestBed, confDir: string, env?: NodeJS.ProcessEnv, extra: string[] = [], ok = [1]): Promise<{ code: number; findings: Finding[]; doc: DoctorDoc }> {
  const res = await inNs(bed.node, [PLUGIN, 'doctor', '--json', '--cni-conf-dir', confDir, ...extra], { ok, ...(env ? { env } : {}) });
  const doc = JSON.parse(res.stdout) as DoctorDoc;
  return { code: res.code, findings: doc.findings, doc };
}

/** The commands of a fix, pasted into a shell in the node namespace, as an operator would. */
async function paste(bed: TestBed, commands: readonly string[]): Promise<void> {
  await inNs(bed.node, ['sh', '-ec', commands.join('\n')]);
}

const ids = (f: Finding[]): string[] => [...new Set(f.map((x) => x.id))].sort();

async function list(bed: TestBed): Promise<Row[]> {
  const res = await inNs(bed.node, [PLUGIN, 'list', '--json']);
  return (JSON.parse(res.stdout) as { mappings: Row[] }).mappings;
}

/** The reference Go plugin, run directly in the node namespace as a runtime would, for an existing pod. */
async function reference(bed: TestBed, command: 'ADD' | 'DEL', id: string, pod: Pod, mappings: PortMappingInput[], network = 'refnet') {
  const config = {
    cniVersion: '1.0.0',
    name: network,
    type: 'portmap',
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: mappings },
    ...(command === 'ADD' ? { prevResult: pod.result } : {}),
  };
  return inNs(bed.node, [REFERENCE_PORTMAP], {
    input: JSON.stringify(config),
    env: { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: pod.netnsPath, CNI_IFNAME: pod.ifname, CNI_PATH: bed.binDir },
  });
}

function nodeListener(bed: TestBed, tag: string, port: number, bind = '::'): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', bed.node, process.execPath, join(ROOT, 'test/integration/echo-server.mjs'), tag, String(port), bind], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    child.stdout!.once('data', () => ok(child));
    child.once('exit', (c) => fail(new Error(`listener exited ${c}`)));
  });
}

const stop = (c: ChildProcess) => new Promise<void>((ok) => { c.once('exit', () => ok()); c.kill('SIGKILL'); });

describe('portmap list matches the traffic that flows', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('lists our and the reference plugin\'s mappings, and each one forwards where it says', async () => {
    const a = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8053, containerPort: 53, protocol: 'udp' }]);
    const b = await bed.addPod([{ hostPort: 9090, containerPort: 81, protocol: 'tcp', hostIP: NODE_V4_B }]);
    const c = await bed.addPod([]);
    await reference(bed, 'ADD', 'ref-c', c, [{ hostPort: 7070, containerPort: 82, protocol: 'tcp' }]);
    for (const [pod, tag, ports] of [[a, 'A', [80, 53]], [b, 'B', [81]], [c, 'C', [82]]] as const) {
      for (const p of ports) await bed.serve(pod.netns, tag, p);
    }
    const tagOf = new Map([[a.ip4, 'A'], [a.ip6, 'A'], [b.ip4, 'B'], [c.ip4, 'C'], [c.ip6, 'C']]);
    const rows = await list(bed);
    const v4 = rows.filter((r) => r.family === 4).map((r) => `${r.protocol} ${r.hostIP ?? '*'}:${r.hostPort} -> ${r.podIP}:${r.containerPort} ${r.origin} ${r.containerID}`);
    expect(v4.sort()).toEqual([
      `tcp *:7070 -> ${c.ip4}:82 reference ref-c`,
      `tcp *:8080 -> ${a.ip4}:80 portmap-ts ${a.id}`,
      `tcp ${NODE_V4_B}:9090 -> ${b.ip4}:81 portmap-ts ${b.id}`,
      `udp *:8053 -> ${a.ip4}:53 portmap-ts ${a.id}`,
    ].sort());
    expect(rows.filter((r) => r.family === 6).map((r) => `${r.protocol}/${r.hostPort}`).sort()).toEqual(['tcp/7070', 'tcp/8080', 'udp/8053']);
    expect(rows.find((r) => r.hostPort === 7070)!.source).toMatch(/^iptables-(nft|legacy)$/);
    for (const r of rows) {
      const host = r.hostIP ?? (r.family === 4 ? NODE_V4 : '2001:db8::1');
      const got = reply(await bed.request(bed.client, r.protocol as 'tcp' | 'udp', host, r.hostPort));
      expect(got.tag, `${r.protocol} ${host}:${r.hostPort}`).toBe(tagOf.get(r.podIP));
    }
    const text = (await inNs(bed.node, [PLUGIN, 'list'])).stdout;
    expect(text).toMatch(/PROTO\s+HOST ADDRESS\s+PORT/);
    expect(text).toMatch(new RegExp(`tcp\\s+\\*\\s+7070\\s+->\\s+${c.ip4!.replace(/\./g, '\\.')}:82\\s+refnet\\s+ref-c\\s+-\\s+-\\s+iptables-\\w+ \\(reference plugin\\)`));
    expect(text).toMatch(new RegExp(`tcp\\s+${NODE_V4_B.replace(/\./g, '\\.')}\\s+9090\\s+->.*testnet.*eth0\\s+\\d+\\s+nftables`));
    // after DEL the mappings are gone from the list
    await bed.delPod(a);
    await reference(bed, 'DEL', 'ref-c', c, [{ hostPort: 7070, containerPort: 82, protocol: 'tcp' }]);
    expect((await list(bed)).map((r) => r.hostPort)).toEqual([9090]);
  });
});

describe('portmap doctor: each finding provoked, detected, fixed', () => {
  let bed: TestBed;
  let conf: string;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
    conf = mkdtempSync(join(tmpdir(), 'pm-conf-'));
    writeFileSync(join(conf, '10-net.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] }));
  });
  afterAll(async () => {
    await bed?.destroy();
    rmSync(conf, { recursive: true, force: true });
  });

  it('a fresh node with one hostPort is healthy (exit 0)', async () => {
    await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    const d = await doctor(bed, conf);
    expect(d.findings).toEqual([]);
    expect(d.code).toBe(0);
    const text = await inNs(bed.node, [PLUGIN, 'doctor', '--cni-conf-dir', conf]);
    expect(text.stdout).toMatch(/no problems found/);
  });

  it('two owners for one host port (reference chains): reports which one wins, and it is the one that answers', async () => {
    const p1 = await bed.addPod([]);
    const p2 = await bed.addPod([]);
    await bed.serve(p1.netns, 'first', 80);
    await bed.serve(p2.netns, 'second', 80);
    const m = [{ hostPort: 7100, containerPort: 80, protocol: 'tcp' }];
    await reference(bed, 'ADD', 'ref-first', p1, m);
    await reference(bed, 'ADD', 'ref-second', p2, m);
    const d = await doctor(bed, conf);
    expect(d.code).toBe(1);
    const f = d.findings.filter((x) => x.id === 'duplicate-hostport');
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toMatch(new RegExp(`${p1.ip4}:80 \\(refnet/ref-first\\) \\[reference plugin, iptables-nft CNI-DN-\\w+\\] receives the traffic`));
    expect(f[0]!.commands).toEqual(expect.arrayContaining([expect.stringMatching(/^iptables-nft -t nat -X CNI-DN-\w+$/)]));
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 7100)).tag).toBe('first');
    // the stale one goes, by the commands the fix prints for it (pasted whole): the finding goes, the new pod answers
    // (one block per owner and family, each under its "# remove ..." line)
    const blocks: string[][] = [];
    for (const c of f[0]!.commands!) if (c.startsWith('#')) blocks.push([c]); else blocks.at(-1)!.push(c);
    const first = blocks.filter((b) => b[0]!.includes('(refnet/ref-first)'));
    expect(first).toHaveLength(2); // IPv4 and IPv6
    await paste(bed, first.flat());
    expect(ids((await doctor(bed, conf)).findings)).not.toContain('duplicate-hostport');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 7100)).tag).toBe('second');
    expect((await inNs(bed.node, ['iptables-save', '-t', 'nat'])).stdout).not.toContain('ref-first');
    await reference(bed, 'DEL', 'ref-second', p2, m);
  });

  it('two owners in different tables (ours and the reference plugin\'s)', async () => {
    const ours = await bed.addPod([{ hostPort: 7200, containerPort: 80, protocol: 'tcp' }]);
    const other = await bed.addPod([]);
    await reference(bed, 'ADD', 'ref-other', other, [{ hostPort: 7200, containerPort: 80, protocol: 'tcp' }]);
    const f = (await doctor(bed, conf)).findings.filter((x) => x.id === 'duplicate-hostport');
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toMatch(/different tables at the same NAT priority/);
    expect(f[0]!.message).toContain(ours.id);
    await reference(bed, 'DEL', 'ref-other', other, [{ hostPort: 7200, containerPort: 80, protocol: 'tcp' }]);
    expect((await doctor(bed, conf)).findings).toEqual([]);
    await bed.delPod(ours);
  });

  it('a process listening on a mapped host port', async () => {
    const l = await nodeListener(bed, 'node-proc', 8080);
    try {
      const f = (await doctor(bed, conf)).findings.filter((x) => x.id === 'listener-shadowed');
      expect(f.length).toBeGreaterThan(0);
      expect(f[0]!.message).toMatch(/node \(pid \d+\) listens on tcp .*:8080/);
      // and indeed the node's own process does not get the connection: the pod's (absent) server does
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).tag).not.toBe('node-proc');
      expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080, { timeoutMs: 800 })).tag).not.toBe('node-proc');
    } finally {
      await stop(l);
    }
    expect(ids((await doctor(bed, conf)).findings)).not.toContain('listener-shadowed');
  });

  it('a conflist chaining portmap without the portMappings capability', async () => {
    const file = join(conf, '20-bad.conflist');
    writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'bridge' }, { type: 'portmap' }] }));
    const f = (await doctor(bed, conf)).findings.filter((x) => x.id === 'conflist-missing-capability');
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toContain('20-bad.conflist');
    writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'bad', plugins: [{ type: 'bridge' }, { type: 'portmap', capabilities: { portMappings: true } }] }));
    expect((await doctor(bed, conf)).findings).toEqual([]);
  });

  it('ip_forward off, route_localnet off', async () => {
    await inNs(bed.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=0', 'net.ipv4.conf.cni0.route_localnet=0']);
    try {
      const d = await doctor(bed, conf);
      expect(ids(d.findings)).toEqual(['ip-forward-off', 'route-localnet-off']);
      expect(d.findings.find((x) => x.id === 'route-localnet-off')!.commands).toEqual(['sysctl -w net.ipv4.conf.cni0.route_localnet=1']);
      expect(d.findings.find((x) => x.id === 'ip-forward-off')!.commands![0]).toBe('sysctl -w net.ipv4.ip_forward=1');
    } finally {
      // ip_forward=1 resets per-interface settings; route_localnet is restored explicitly
      await inNs(bed.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1', 'net.ipv4.conf.cni0.route_localnet=1']);
    }
    expect((await doctor(bed, conf)).findings).toEqual([]);
  });

  it('tools outside PATH are found in /usr/sbin and noted, not reported missing; really missing ones are', async () => {
    const bin = mkdtempSync(join(tmpdir(), 'pm-path-'));
    try {
      await sh(['ln', '-s', process.execPath, join(bin, 'node')]);
      for (const t of ['ip', 'ss']) copyFileSync((await sh(['sh', '-c', `command -v ${t}`])).stdout.trim(), join(bin, t));
      await sh(['chmod', '0755', join(bin, 'ip'), join(bin, 'ss')]);
      // PATH without /usr/sbin (a runtime's, sudo's): nft and iptables are there, and used from there
      const reduced = await doctor(bed, conf, { ...process.env, PATH: bin });
      expect(reduced.findings).toEqual([]);
      expect(reduced.doc.complete).toBe(true);
      expect(reduced.doc.notes.join('\n')).toMatch(/installed but not on PATH .*nft \(\/usr\/sbin\/nft\)/);
      // /usr/sbin (and /sbin, its link) and /usr/local/sbin hidden: now they are missing, and nothing could be read
      const hidden = await inNs(bed.node, [
        '/usr/bin/unshare', '--mount', '--propagation', 'private', '/bin/sh', '-c',
        '/usr/bin/mount -t tmpfs tmpfs /usr/sbin && /usr/bin/mount -t tmpfs tmpfs /usr/local/sbin && exec "$@"', 'sh',
        PLUGIN, 'doctor', '--json', '--cni-conf-dir', conf,
      ], { env: { ...process.env, PATH: bin }, ok: [4] });
      expect(hidden.code).toBe(4);
      const doc = JSON.parse(hidden.stdout) as DoctorDoc;
      expect(ids(doc.findings)).toEqual(expect.arrayContaining(['tool-missing-conntrack', 'tool-missing-iptables', 'tool-missing-nft']));
      expect(doc.findings.find((x) => x.id === 'tool-missing-nft')!.commands).toEqual(['apt-get install nftables']);
      expect(doc).toMatchObject({ healthy: false, complete: false });
      expect(doc.unreadable.map((u) => u.what)).toEqual(['hostPort rules']);
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
    expect((await doctor(bed, conf)).findings).toEqual([]);
  });

  it('a conflist whose portmap entry has "backend": "nft": an error naming file, entry and key, and indeed ADD fails', async () => {
    const file = join(conf, '20-nft.conflist');
    writeFileSync(file, JSON.stringify({ cniVersion: '1.0.0', name: 'nftnet', plugins: [{ type: 'bridge' }, { type: 'portmap', backend: 'nft', capabilites: { portMappings: true } }] }));
    try {
      const f = (await doctor(bed, conf)).findings;
      const invalid = f.find((x) => x.id === 'conflist-invalid-value')!;
      expect(invalid.message).toContain(`${file}: plugins[1] (portmap): unrecognized backend "nft": backend must be "nftables" or "iptables"`);
      expect(invalid.where).toEqual({ file, plugin: 1, key: 'backend' });
      // 20-nft sorts after 10-net, which the runtime loads: not an error there, but a warning
      expect(invalid.severity).toBe('warning');
      const typo = f.find((x) => x.id === 'conflist-config-warning')!;
      expect(typo.where).toEqual({ file, plugin: 1, key: 'capabilites', suggestion: 'capabilities' });
      expect(ids(f)).toContain('conflist-missing-capability');
      // what the finding says: the plugin refuses every ADD of that configuration (CNI error 7)
      const pod = await bed.addPod([]);
      const add = await bed.plugin({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'nft-typo', CNI_NETNS: pod.netnsPath, CNI_IFNAME: 'eth0' },
        { ...bed.portmapConfig({ backend: 'nft' }), prevResult: pod.result });
      expect(add.code).toBe(1);
      expect(add.json).toMatchObject({ code: 7, msg: 'unrecognized backend "nft"' });
      await bed.delPod(pod);
    } finally {
      rmSync(file);
    }
    expect((await doctor(bed, conf)).findings).toEqual([]);
  });
});

describe('portmap doctor: a host port taken over by a second pod', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  const audit = (ok = [1]) => doctor(bed, bed.dir, undefined, ['--data-dir', bed.dataDir, '--cni-cache-dir', join(bed.cacheDir, 'results')], ok);

  it('reports who held it and who has it now (with the pod name its record keeps), then the pasted restore gives it back', async () => {
    const m = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }];
    const a = await bed.addPod(m);
    await bed.serve(a.netns, 'A', 80);
    // B: another pod asking for 8080, ADDed as kubelet's runtime does (CNI_ARGS with the pod's names)
    const b = await bed.addPod([]);
    await bed.serve(b.netns, 'B', 80);
    const env = { CNI_CONTAINERID: 'web-b-id', CNI_NETNS: b.netnsPath, CNI_IFNAME: 'eth0', CNI_ARGS: 'K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-b' };
    const config = { ...bed.portmapConfig({ runtimeConfig: { portMappings: m } }), prevResult: b.result };
    expect((await bed.plugin({ ...env, CNI_COMMAND: 'ADD' }, config)).code).toBe(0);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('B');
    const d = await audit();
    const taken = d.findings.filter((x) => x.id === 'hostport-taken-over');
    expect(taken).toHaveLength(1);
    expect(taken[0]!.severity).toBe('warning');
    expect(taken[0]!.message).toMatch(new RegExp(
      `^hostPorts 8080/tcp, 8080/tcp \\(IPv6\\) were held by testnet/${a.id}/eth0 \\(${a.ip4!.replace(/\./g, '\\.')}\\) since \\S+Z; ` +
      `now pod shop/web-b \\(testnet/web-b-id/eth0, ${b.ip4!.replace(/\./g, '\\.')}\\) has them, since \\S+Z`,
    ));
    expect(taken[0]!.fix).toMatch(/delete the older pod \(testnet\/.*\), or change its hostPort/);
    expect(ids(d.findings)).not.toContain('hostport-not-forwarded');
    // B goes: A's forward does not come back by itself; the fix's command, pasted, restores it
    expect((await bed.plugin({ ...env, CNI_COMMAND: 'DEL' }, bed.portmapConfig({ runtimeConfig: { portMappings: m } }))).code).toBe(0);
    const gone = (await audit()).findings.find((x) => x.id === 'hostport-not-forwarded')!;
    expect(gone.message).toContain(a.id);
    expect(gone.commands).toEqual([`${PLUGIN} restore --data-dir ${bed.dataDir} --cni-cache-dir ${join(bed.cacheDir, 'results')}`]);
    await paste(bed, gone.commands!);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('A');
    expect((await audit([0])).findings).toEqual([]);
    await bed.delPod(a);
    await bed.delPod(b);
  });
});

describe('portmap list and doctor without privileges', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
    await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  });
  afterAll(() => bed?.destroy());

  const asNobody = (args: string[], ok = [4]) =>
    inNs(bed.node, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', ...args], { ok });

  it.each([['the bundle', PLUGIN], ['the standalone executable', STANDALONE]])('%s: list exits 4 and says to run it as root, never "No hostPort mappings"', async (_what, exe) => {
    const text = await asNobody([exe, 'list']);
    expect(text.code).toBe(4);
    expect(text.stdout).toBe('');
    expect(text.stderr).toContain("portmap list: could not read the node's hostPort rules: not running as root (uid 65534)");
    expect(text.stderr).toContain(`\n    sudo ${exe} list\n`);
    expect(text.stderr).toMatch(/nft ruleset \(nft -j list ruleset\): exit 1: Operation not permitted/);
    const json = await asNobody([exe, 'list', '--json']);
    expect(json.code).toBe(4);
    const doc = JSON.parse(json.stdout) as { mappings: unknown[]; complete: boolean; rerun: string; unreadable: Array<{ what: string; permission: boolean }> };
    expect(doc).toMatchObject({ mappings: [], complete: false, rerun: `sudo ${exe} list --json` });
    expect(doc.unreadable.find((u) => u.what === 'nft ruleset')?.permission).toBe(true);
    // as root the same command lists the mapping
    expect((JSON.parse((await inNs(bed.node, [exe, 'list', '--json'])).stdout) as { mappings: Array<{ hostPort: number }> }).mappings.map((m) => m.hostPort)).toContain(8080);
  });

  it('doctor exits 4, "healthy": false and "complete": false, with what was not read and why', async () => {
    const json = await asNobody([PLUGIN, 'doctor', '--json', '--cni-conf-dir', bed.dir, '--data-dir', bed.dataDir]);
    expect(json.code).toBe(4);
    const doc = JSON.parse(json.stdout) as DoctorDoc;
    expect(doc).toMatchObject({ healthy: false, complete: false });
    expect(doc.rerun).toBe(`sudo ${PLUGIN} doctor --json --cni-conf-dir ${bed.dir} --data-dir ${bed.dataDir}`);
    expect(doc.unreadable.filter((u) => u.rules).every((u) => u.permission)).toBe(true);
    expect(json.stderr).toMatch(/not all of the node could be read/);
    const text = await asNobody([PLUGIN, 'doctor', '--cni-conf-dir', bed.dir]);
    expect(text.stdout).not.toMatch(/no problems found/);
    expect(text.stdout).toMatch(/^portmap doctor: could not read the node's hostPort rules: not running as root \(uid 65534\)/);
    expect(text.stdout).toMatch(/not\s+known\s+to\s+be\s+healthy/);
    // as root: complete, and healthy
    const root = await doctor(bed, bed.dir, undefined, ['--data-dir', bed.dataDir, '--cni-cache-dir', join(bed.cacheDir, 'results')], [0]);
    expect(root.doc).toMatchObject({ healthy: true, complete: true, unreadable: [] });
  });

  it('restore exits 4 with the sudo line instead of a stack trace', async () => {
    const r = await asNobody([PLUGIN, 'restore', '--data-dir', bed.dataDir]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/^portmap restore: nothing was restored: EACCES/);
    expect(r.stderr).toContain(`sudo ${PLUGIN} restore --data-dir ${bed.dataDir}`);
    expect(r.stderr).not.toMatch(/ at /);
  });
});

describe('portmap doctor: hostPorts against Services', () => {
  let bed: TestBed;
  let conf: string;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
    conf = bed.dir;
  });
  afterAll(() => bed?.destroy());

  it('ipvs: a hostPort equal to a ClusterIP Service port takes its traffic until serviceCIDRs excludes it', async () => {
    // kube-proxy ipvs, simulated: ClusterIP 10.96.0.10 on kube-ipvs0 (local), KUBE-CLUSTER-IP ipset, a "Service" on the node.
    await sh(['ip', '-n', bed.node, 'link', 'add', 'kube-ipvs0', 'type', 'bridge']);
    await sh(['ip', '-n', bed.node, 'addr', 'add', '10.96.0.10/32', 'dev', 'kube-ipvs0']);
    await inNs(bed.node, ['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
    await inNs(bed.node, ['ipset', 'add', 'KUBE-CLUSTER-IP', '10.96.0.10,tcp:3306']);
    const svc = await nodeListener(bed, 'service', 3306, '10.96.0.10');
    try {
      const pod = await bed.addPod([{ hostPort: 3306, containerPort: 3306, protocol: 'tcp' }]);
      await bed.serve(pod.netns, 'hostport-pod', 3306);
      expect(reply(await bed.request(bed.node, 'tcp', '10.96.0.10', 3306)).tag).toBe('hostport-pod');
      const d = await doctor(bed, conf);
      expect(ids(d.findings)).toEqual(['listener-shadowed', 'service-port-captured']);
      expect(d.findings.find((x) => x.id === 'service-port-captured')!.message).toMatch(/Service 10\.96\.0\.10:3306 \(ClusterIP, kube-proxy ipvs\)/);
      await bed.delPod(pod);
      bed.writeConflist({ backend: 'nftables', afterServices: true, serviceCIDRs: ['10.96.0.0/12'] });
      const fixed = await bed.addPod([{ hostPort: 3306, containerPort: 3306, protocol: 'tcp' }]);
      await bed.serve(fixed.netns, 'hostport-pod', 3306);
      expect(reply(await bed.request(bed.node, 'tcp', '10.96.0.10', 3306)).tag).toBe('service');
      expect((await doctor(bed, conf)).findings).toEqual([]);
      await bed.delPod(fixed);
    } finally {
      await stop(svc);
      bed.writeConflist({ backend: 'nftables' });
    }
  });

  it('iptables: KUBE-SERVICES after the reference plugin\'s jump, NodePort equal to its hostPort', async () => {
    const pod = await bed.addPod([]);
    await bed.serve(pod.netns, 'hostport-pod', 80);
    const m = [{ hostPort: 30080, containerPort: 80, protocol: 'tcp' }];
    await reference(bed, 'ADD', 'ref-np', pod, m);
    // kube-proxy (iptables mode, same flavour), whose jump lands after CNI-HOSTPORT-DNAT
    await inNs(bed.node, ['iptables-restore', '--noflush'], {
      input: [
        '*nat', ':KUBE-SERVICES - [0:0]', ':KUBE-NODEPORTS - [0:0]',
        '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS',
        '-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport 30080 -j RETURN',
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        'COMMIT', '',
      ].join('\n'),
    });
    const d = await doctor(bed, conf);
    expect(ids(d.findings)).toEqual(['kube-services-after-hostports', 'service-port-captured']);
    expect(d.findings.find((x) => x.id === 'service-port-captured')!.message).toMatch(/NodePort tcp\/30080 \(kube-proxy iptables\) default\/web:http/);
    // fix: KUBE-SERVICES first, as kube-proxy does
    for (const chain of ['PREROUTING', 'OUTPUT']) {
      await inNs(bed.node, ['iptables', '-t', 'nat', '-D', chain, '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
      await inNs(bed.node, ['iptables', '-t', 'nat', '-I', chain, '1', '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
    }
    expect((await doctor(bed, conf)).findings).toEqual([]);
    for (const chain of ['PREROUTING', 'OUTPUT']) {
      await inNs(bed.node, ['iptables', '-t', 'nat', '-D', chain, '-m', 'comment', '--comment', 'kubernetes service portals', '-j', 'KUBE-SERVICES']);
    }
    for (const op of ['-F', '-X']) for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS']) await inNs(bed.node, ['iptables', '-t', 'nat', op, c]);
  });

  it('kube-proxy rules in iptables-legacy, hostPort rules in iptables-nft', async () => {
    await inNs(bed.node, ['iptables-legacy-restore', '--noflush'], {
      input: ['*nat', ':KUBE-SERVICES - [0:0]', '-A PREROUTING -j KUBE-SERVICES', 'COMMIT', ''].join('\n'),
    });
    const f = (await doctor(bed, conf)).findings.filter((x) => x.id === 'iptables-flavour-split');
    expect(f).toHaveLength(1);
    expect(f[0]!.message).toMatch(/iptables-legacy but hostPort rules .* are in iptables-nft/);
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-D', 'PREROUTING', '-j', 'KUBE-SERVICES']);
    await inNs(bed.node, ['iptables-legacy', '-t', 'nat', '-X', 'KUBE-SERVICES']);
    expect((await doctor(bed, conf)).findings).toEqual([]);
  });
});
