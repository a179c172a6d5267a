/**
 * `portmap install` and `portmap uninstall` on a node that runs the reference plugin: the
 * self-contained executable installs itself into a temporary CNI bin directory (keeping the reference
 * as portmap.orig), chains a conflist of a temporary conf dir, serves pods, is upgraded in place while
 * a runtime keeps exec'ing it, then uninstalls back to the REAL reference plugin, which forwards,
 * CHECKs and DELetes the very pods ours made. Traffic proves each step.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V6, type Pod, REFERENCE_PORTMAP, ROOT, TestBed, inNs, reply, sh } from './harness.js';

/** The self-contained executable, named in one place (build/executable.json). */
export const EXECUTABLE = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'build', 'executable.json'), 'utf8')) as { selfContained: string }).selfContained);

const natSave = async (bed: TestBed, family: 4 | 6 = 4): Promise<string> =>
  (await inNs(bed.node, [family === 4 ? 'iptables-save' : 'ip6tables-save', '-t', 'nat'])).stdout;
const dnChains = (save: string): string[] => [...save.matchAll(/^:(CNI-DN-[0-9a-f]+)/gm)].map((m) => m[1]!);
/** A PATH directory holding every program of the usual ones but those matching `hide`. */
function pathWithout(dir: string, hide: RegExp): string {
  mkdirSync(dir, { recursive: true });
  for (const from of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!existsSync(from)) continue;
    for (const name of readdirSync(from)) {
      if (hide.test(name) || existsSync(join(dir, name))) continue;
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

const hasOurTable = async (bed: TestBed): Promise<boolean> =>
  (await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'], { ok: [1] })).code === 0;

/**
 * The whole life cycle on a dual-stack and on an IPv4-only network. The reference plugin (Debian's
 * 1.1.1) fails CHECK on every dual-stack pod, its own included: it checks the IPv4 rules in the IPv6
 * chain as well ("could not check ipv6 dnat"); on dual-stack the test asserts that it judges the
 * converted pods exactly as it judges its own.
 */
function lifecycle(stack: 'dual-stack' | 'IPv4-only'): void {
describe(`install, upgrade, uninstall back to the reference plugin (self-contained executable, ${stack})`, () => {
  const dual = stack === 'dual-stack';
  let bed: TestBed;
  let confDir: string;
  let confFile: string;
  let bridgeOnly: Record<string, unknown>;
  const pods: Pod[] = [];
  const run = (args: string[], ok: number[] = []) => inNs(bed.node, [EXECUTABLE, ...args], { ok, timeoutMs: 60_000 });

  beforeAll(async () => {
    if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: npm run build makes it`);
    bed = await TestBed.create({ plugin: REFERENCE_PORTMAP });
    // A node as an operator finds it: the reference plugin as a file in the bin dir, a conflist without portmap.
    rmSync(join(bed.binDir, 'portmap'));
    copyFileSync(REFERENCE_PORTMAP, join(bed.binDir, 'portmap'));
    const conf = JSON.parse(readFileSync(bed.conflist, 'utf8')) as { plugins: Array<Record<string, unknown>> };
    conf.plugins = conf.plugins.filter((p) => p.type !== 'portmap');
    if (!dual) {
      const ipam = conf.plugins[0]!.ipam as { ranges: unknown[][]; routes: unknown[] };
      ipam.ranges = ipam.ranges.slice(0, 1);
      ipam.routes = ipam.routes.slice(0, 1);
    }
    bridgeOnly = conf;
    confDir = join(bed.dir, 'net.d');
    mkdirSync(confDir);
    confFile = join(confDir, '10-testnet.conflist');
    writeFileSync(confFile, `${JSON.stringify(conf, null, 2)}\n`);
    writeFileSync(join(confDir, '99-other.conflist'), '{"cniVersion":"1.0.0","name":"other","plugins":[{"type":"bridge"}]}\n');
    // The runtime loads the conf dir's file (cnirun takes a path: the bed's conflist points there).
    rmSync(bed.conflist);
    symlinkSync(confFile, bed.conflist);
  });
  afterAll(async () => {
    await bed?.destroy();
  });

  it('--dry-run changes nothing and shows the diff', async () => {
    const before = readFileSync(confFile, 'utf8');
    const res = await run(['install', '--cni-bin-dir', bed.binDir, '--chain', '--cni-conf-dir', confDir, '--dry-run']);
    expect(res.stdout).toContain(`would install ${join(bed.binDir, 'portmap')}`);
    expect(res.stdout).toContain(`keep the plugin it replaced as ${join(bed.binDir, 'portmap.orig')}`);
    expect(res.stdout).toMatch(/\n\+ {6}"type": "portmap",\n/);
    expect(readFileSync(confFile, 'utf8')).toBe(before);
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    expect(existsSync(join(bed.binDir, 'portmap.orig'))).toBe(false);
  });

  it('installs into a bin dir it creates, and chains the first conflist only, keeping the rest of it', async () => {
    const fresh = join(bed.dir, 'fresh', 'opt', 'cni', 'bin');
    const r0 = await run(['install', '--cni-bin-dir', fresh]);
    expect(r0.stdout).toContain(`created ${fresh}`);
    expect(statSync(join(fresh, 'portmap')).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(fresh, 'portmap')).equals(readFileSync(EXECUTABLE))).toBe(true);

    const res = await run(['install', '--cni-bin-dir', bed.binDir, '--chain', '--cni-conf-dir', confDir]);
    expect(res.stdout).toContain(`added portmap to ${confFile}`);
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(EXECUTABLE))).toBe(true);
    expect(readFileSync(join(bed.binDir, 'portmap.orig')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    const chained = JSON.parse(readFileSync(confFile, 'utf8')) as { plugins: Array<Record<string, unknown>> };
    expect(chained).toEqual({ ...bridgeOnly, plugins: [...(bridgeOnly.plugins as unknown[]), { type: 'portmap', capabilities: { portMappings: true } }] });
    expect(readFileSync(join(confDir, '99-other.conflist'), 'utf8')).not.toContain('portmap');
    expect(readdirSync(confDir).sort()).toEqual(['10-testnet.conflist', '99-other.conflist']);
    expect(readdirSync(bed.binDir).filter((f) => f.startsWith('.') || f.startsWith('portmap')).sort()).toEqual(['portmap', 'portmap.orig']);

    // Idempotent: nothing changes the second time.
    const text = readFileSync(confFile, 'utf8');
    const again = await run(['install', '--cni-bin-dir', bed.binDir, '--chain', '--cni-conf-dir', confDir, '--json']);
    const report = JSON.parse(again.stdout) as { binary: { action: string }; chain: { action: string } };
    expect(report.binary.action).toBe('unchanged');
    expect(report.chain.action).toBe('unchanged');
    expect(readFileSync(confFile, 'utf8')).toBe(text);
  });

  it('serves pods through the installed plugin (nftables, its default)', async () => {
    pods.push(await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 8053, containerPort: 53, protocol: 'udp' }]));
    pods.push(await bed.addPod([{ hostPort: 8090, containerPort: 80, protocol: 'tcp' }]));
    await bed.serve(pods[0]!.netns, 'podA', 80);
    await bed.serve(pods[0]!.netns, 'podA', 53);
    await bed.serve(pods[1]!.netns, 'podB', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'podA', peer: CLIENT_V4 });
    if (dual) expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8090))).toEqual({ tag: 'podB', peer: CLIENT_V6 });
    expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 8053)).tag).toBe('podA');
    expect(await hasOurTable(bed)).toBe(true);
    expect(dnChains(await natSave(bed))).toEqual([]);
  });

  it('upgrades in place while the runtime keeps exec\'ing the plugin, keeping the old version for rollback', async () => {
    const next = join(bed.dir, 'portmap-next');
    copyFileSync(EXECUTABLE, next);
    appendFileSync(next, '\n'); // another build: other bytes, same behaviour
    let stop = false;
    const checks: number[] = [];
    const checker = (async () => {
      while (!stop) checks.push((await bed.checkPod(pods[0]!)).code);
    })();
    await new Promise((r) => setTimeout(r, 300));
    const res = await inNs(bed.node, [next, 'install', '--cni-bin-dir', bed.binDir]);
    await new Promise((r) => setTimeout(r, 300));
    stop = true;
    await checker;
    expect(res.stdout).toContain(`kept the earlier version of this plugin as ${join(bed.binDir, 'portmap.previous')}`);
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(next))).toBe(true);
    expect(readFileSync(join(bed.binDir, 'portmap.previous')).equals(readFileSync(EXECUTABLE))).toBe(true);
    expect(readFileSync(join(bed.binDir, 'portmap.orig')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    expect(checks.length).toBeGreaterThan(2);
    expect(checks.every((c) => c === 0)).toBe(true);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('podA');
    pods.push(await bed.addPod([{ hostPort: 8100, containerPort: 80, protocol: 'tcp' }]));
    await bed.serve(pods[2]!.netns, 'podC', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8100)).tag).toBe('podC');
  });

  it('uninstall --dry-run shows the reference layout and changes nothing', async () => {
    const res = await run(['uninstall', '--cni-bin-dir', bed.binDir, '--cni-cache-dir', join(bed.cacheDir, 'results'), '--dry-run']);
    expect(res.stdout).toMatch(new RegExp(`^3 attachment\\(s\\) with ${dual ? 8 : 4} forward\\(s\\) in nft inet cni_portmap`));
    expect(res.stdout).toContain(`-I CNI-HOSTPORT-DNAT 1 -m comment --comment "dnat name: \\"testnet\\" id: \\"${pods[0]!.id}\\""`);
    expect(res.stdout).toContain(`would put ${join(bed.binDir, 'portmap.orig')} back as ${join(bed.binDir, 'portmap')}`);
    // The runtime's cached results it reads each pod's subnet from (--cni-cache-dir).
    expect(readdirSync(join(bed.cacheDir, 'results'))).toContain(`testnet-${pods[0]!.id}-eth0`);
    expect(await hasOurTable(bed)).toBe(true);
    expect(dnChains(await natSave(bed))).toEqual([]);
  });

  it('uninstall re-creates every forward in iptables, puts the reference back, then removes our table', async () => {
    // The pods' records (dataDir) give their exact plans; the table would do as well (the dry run above).
    const res = await run(['uninstall', '--cni-bin-dir', bed.binDir, '--cni-cache-dir', join(bed.cacheDir, 'results'), '--data-dir', bed.dataDir]);
    expect(res.stdout).toContain('deleted the nftables table inet cni_portmap');
    expect(await hasOurTable(bed)).toBe(false);
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    expect(readdirSync(bed.binDir).filter((f) => f.startsWith('.') || f.startsWith('portmap'))).toEqual(['portmap']);
    expect(dnChains(await natSave(bed)).sort()).toHaveLength(3);
    expect(dnChains(await natSave(bed, 6)).sort()).toHaveLength(dual ? 3 : 0);
    // Every forward still works: both families, UDP, node -> 127.0.0.1, hairpin.
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'podA', peer: CLIENT_V4 });
    if (dual) expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'podA', peer: CLIENT_V6 });
    expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 8053)).tag).toBe('podA');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8090)).tag).toBe('podB');
    expect(reply(await bed.request(bed.client, dual ? 'tcp' : 'tcp', dual ? NODE_V6 : NODE_V4, 8100)).tag).toBe('podC');
    expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8090)).tag).toBe('podB');
    expect(reply(await bed.request(pods[1]!.netns, 'tcp', NODE_V4, 8090))).toEqual({ tag: 'podB', peer: '10.244.0.1' });
    // Running it again is harmless: nothing left to convert, the reference stays.
    const again = await run(['uninstall', '--cni-bin-dir', bed.binDir]);
    expect(again.stdout).toContain('no nftables table inet cni_portmap here');
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
  });

  it('the reference plugin CHECKs, serves new pods beside them, and DELetes the pods ours made', async () => {
    const d = await bed.addPod([{ hostPort: 8110, containerPort: 80, protocol: 'tcp' }]);
    // Debian's reference (1.1.1) checks every pod's IPv4 rules in ip6tables too whenever ip6tables works:
    // its CHECK fails for its own pods then, and it fails alike for the converted ones.
    const own = await bed.checkPod(d);
    expect(own.code).toBe(1);
    const failure = dual
      ? /^could not check ipv6 dnat: rule \[\[-p tcp --dport \d+ -s 10\.244\.0\.\d+\/24 -j CNI-HOSTPORT-SETMARK\]/
      : /^could not check ipv6 dnat: chain CNI-DN-[0-9a-f]+ not found in iptables table nat/;
    expect(own.stderr).toMatch(failure);
    for (const p of pods) {
      const check = await bed.checkPod(p);
      expect(check.code).toBe(1);
      expect(check.stderr).toMatch(failure);
    }
    if (!dual) {
      // Without ip6tables on its PATH it checks IPv4 only, and then passes: its own pod and ours.
      const path = pathWithout(join(bed.dir, 'no-ip6tables'), /^ip6tables/);
      bed.opts.env = { PATH: path };
      try {
        for (const p of [d, ...pods]) {
          const check = await bed.checkPod(p);
          expect(check.code, `${p.id}: ${check.stdout}${check.stderr}`).toBe(0);
        }
        // And it notices a broken one: a DNAT rule of a converted pod removed by hand.
        const chain = dnChains(await natSave(bed)).find((c) => c !== undefined)!;
        const rule = (await inNs(bed.node, ['iptables', '-t', 'nat', '-S', chain])).stdout.split('\n').find((l) => l.includes('-j DNAT'))!;
        await inNs(bed.node, ['iptables', '-t', 'nat', ...rule.replace(/^-A /, '-D ').split(' ')]);
        const broken = await Promise.all([d, ...pods].map((p) => bed.checkPod(p)));
        expect(broken.filter((c) => c.code !== 0)).toHaveLength(1);
        await inNs(bed.node, ['iptables', '-t', 'nat', ...rule.split(' ')]);
      } finally {
        delete bed.opts.env;
      }
    }
    await bed.serve(d.netns, 'podD', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8110)).tag).toBe('podD');
    expect(dnChains(await natSave(bed))).toHaveLength(4);
    for (const p of pods) expect((await bed.delPod(p)).code).toBe(0);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
    expect(await bed.request(bed.client, 'tcp', dual ? NODE_V6 : NODE_V4, 8100, { timeoutMs: 800 })).toBeUndefined();
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8110)).tag).toBe('podD');
    expect((await bed.delPod(d)).code).toBe(0);
    expect(dnChains(await natSave(bed))).toEqual([]);
    expect(dnChains(await natSave(bed, 6))).toEqual([]);
    expect(await hasOurTable(bed)).toBe(false);
  });

  it('refuses to install the node-run bundle unless told', async () => {
    const res = await inNs(bed.node, [join(ROOT, 'dist', 'portmap'), 'install', '--cni-bin-dir', join(bed.dir, 'x')], { ok: [1] });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/needs node >= 20 .*--allow-script/s);
    expect(existsSync(join(bed.dir, 'x'))).toBe(false);
  });
});
}

lifecycle('IPv4-only');
lifecycle('dual-stack');

// ---------------------------------------------------------------------------------------------------
// The container image (deploy/Containerfile, built offline from scratch) and the DaemonSet manifest.

const IMAGE = `localhost/portmap:test-${process.pid}`;
/** podman flags for this machine: rlimits no higher than the sandbox allows; runc where crun refuses hybrid cgroups. */
const RUN_FLAGS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];
const podmanVersion = spawnSync('podman', ['--version'], { encoding: 'utf8' });
const podman = podmanVersion.status === 0;
if (!podman) console.warn(`SKIPPED the container image tests: podman cannot run here (${podmanVersion.error?.message ?? podmanVersion.stderr}); scripts/setup.sh installs it`);

interface Manifest {
  kind: string;
  spec: { template: { spec: Record<string, unknown> & { initContainers: Container[]; containers: Container[]; volumes: Array<{ name: string; hostPath?: { path: string; type?: string } }>; tolerations: unknown[] } } };
}
interface Container {
  name: string;
  image: string;
  args: string[];
  securityContext: { privileged?: boolean; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts: Array<{ name: string; mountPath: string; readOnly?: boolean }>;
}

const manifest = (): Manifest => {
  const res = spawnSync('python3', ['-c', 'import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))', join(ROOT, 'deploy', 'daemonset.yaml')], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`reading deploy/daemonset.yaml needs python3-yaml (scripts/setup.sh installs it): ${res.stderr}`);
  return JSON.parse(res.stdout) as Manifest;
};

/** The ENTRYPOINT of deploy/Containerfile. */
const entrypoint = (): string[] => {
  const line = readFileSync(join(ROOT, 'deploy', 'Containerfile'), 'utf8').split('\n').find((l) => l.startsWith('ENTRYPOINT '))!;
  return JSON.parse(line.slice('ENTRYPOINT '.length)) as string[];
};

describe('the DaemonSet manifest', () => {
  it('installs and chains in an init container, keeps it installed, on every node, with host paths and no capability', () => {
    const m = manifest();
    expect(m.kind).toBe('DaemonSet');
    const pod = m.spec.template.spec;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.tolerations).toEqual([{ operator: 'Exists' }]);
    expect(pod.priorityClassName).toBe('system-node-critical');
    const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name, v.hostPath?.path]));
    expect(Object.values(volumes).sort()).toEqual(['/etc/cni/net.d', '/opt/cni/bin', '/var/lib/cni']);
    const [init] = pod.initContainers;
    const [keep] = pod.containers;
    expect(init!.args.slice(0, 2)).toEqual(['--chain', '--kubernetes']);
    expect(init!.args).toContain('--service-cidr');
    expect(keep!.args).toEqual([...init!.args, '--repeat', '60']);
    expect(keep!.image).toBe(init!.image);
    // The mounts are where the image's entry point installs to.
    const ep = entrypoint();
    for (const c of [init!, keep!]) {
      const at = (vol: string) => c.volumeMounts.find((v) => volumes[v.name] === vol)?.mountPath;
      expect(ep).toContain(`--cni-bin-dir=${at('/opt/cni/bin')}`);
      expect(ep).toContain(`--cni-conf-dir=${at('/etc/cni/net.d')}`);
      expect(c.volumeMounts.find((v) => volumes[v.name] === '/var/lib/cni')?.readOnly).toBe(true);
      expect(c.securityContext.privileged).toBeUndefined();
      expect(c.securityContext.allowPrivilegeEscalation).toBe(false);
      expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(c.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    }
  });
});

describe.runIf(podman)('the container image: built offline with podman, installs into host paths, the plugin then serves a pod', () => {
  let bed: TestBed;
  let confDir: string;
  let flags: string[] = [];
  beforeAll(async () => {
    if (!existsSync(EXECUTABLE)) throw new Error(`${EXECUTABLE} is missing: npm run build makes it`);
    const build = await sh([process.execPath, join(ROOT, 'deploy', 'build-image.mjs'), '--tag', IMAGE], { timeoutMs: 300_000 });
    expect(build.stdout).toContain(`built ${IMAGE}`);
    // crun refuses this machine's hybrid cgroup layout; runc takes it.
    for (const f of [[], ['--runtime', 'runc']]) {
      const probe = await sh(['podman', 'run', '--rm', ...f, ...RUN_FLAGS, '--network=none', '--entrypoint', '/portmap', IMAGE, '--version'], { ok: [125, 126, 127] });
      if (probe.code === 0) {
        flags = f;
        break;
      }
      flags = ['unusable'];
    }
    if (flags[0] === 'unusable') throw new Error('podman is installed but cannot run a container here with crun or runc');
    bed = await TestBed.create({ plugin: REFERENCE_PORTMAP });
    rmSync(join(bed.binDir, 'portmap'));
    copyFileSync(REFERENCE_PORTMAP, join(bed.binDir, 'portmap'));
    const conf = JSON.parse(readFileSync(bed.conflist, 'utf8')) as { plugins: Array<Record<string, unknown>> };
    conf.plugins = conf.plugins.filter((p) => p.type !== 'portmap');
    confDir = join(bed.dir, 'net.d');
    mkdirSync(confDir);
    writeFileSync(join(confDir, '10-testnet.conflist'), JSON.stringify(conf, null, 2));
    mkdirSync(bed.cacheDir, { recursive: true });
    rmSync(bed.conflist);
    symlinkSync(join(confDir, '10-testnet.conflist'), bed.conflist);
  }, 300_000);
  afterAll(async () => {
    await bed?.destroy();
    await sh(['podman', 'rmi', '-f', IMAGE], { ok: [1, 2, 125] }).catch(() => undefined);
  });

  it('holds the executable and only the libraries it loads', async () => {
    const inspect = await sh(['podman', 'image', 'inspect', IMAGE, '--format', '{{json .Config.Entrypoint}}']);
    expect(inspect.stdout.trim()).toBe(JSON.stringify(entrypoint()));
    const id = (await sh(['podman', 'create', IMAGE])).stdout.trim();
    try {
      const dir = mkdtempSync(join(tmpdir(), 'portmap-image-files-'));
      try {
        await sh(['podman', 'export', '-o', join(dir, 'fs.tar'), id], { timeoutMs: 120_000 });
        const files = (await sh(['tar', '-tf', join(dir, 'fs.tar')])).stdout.split('\n').filter((f) => f !== '' && !f.endsWith('/'));
        const ldd = (await sh(['ldd', EXECUTABLE], { ok: [1] })).stdout;
        const libs = [...ldd.matchAll(/(?:=>\s+|^\s*)(\/\S+)\s+\(/gm)].map((m) => m[1]!.slice(1));
        expect(files.sort()).toEqual(['portmap', ...libs].sort());
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    } finally {
      await sh(['podman', 'rm', id]);
    }
  });

  it('runs the DaemonSet init container\'s arguments against directories standing in for the host paths', async () => {
    const init = manifest().spec.template.spec.initContainers[0]!;
    const res = await sh([
      'podman', 'run', '--rm', ...flags, ...RUN_FLAGS, '--network=none', '--cap-drop=ALL', '--read-only', '--security-opt', 'no-new-privileges',
      '-v', `${bed.binDir}:/host/opt/cni/bin`, '-v', `${confDir}:/host/etc/cni/net.d`, '-v', `${bed.cacheDir}:/host/var/lib/cni:ro`,
      IMAGE, ...init.args,
    ], { timeoutMs: 120_000 });
    expect(res.stdout).toContain('installed /host/opt/cni/bin/portmap');
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(EXECUTABLE))).toBe(true);
    expect(readFileSync(join(bed.binDir, 'portmap.orig')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    const chained = JSON.parse(readFileSync(join(confDir, '10-testnet.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> };
    expect(chained.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(chained.plugins[1]).toEqual({ type: 'portmap', capabilities: { portMappings: true }, afterServices: true, serviceCIDRs: ['10.96.0.0/12'] });
  });

  it('the installed plugin serves a pod in a network namespace', async () => {
    const pod = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'imagePod', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'imagePod', peer: CLIENT_V4 });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'imagePod', peer: CLIENT_V6 });
    expect(await hasOurTable(bed)).toBe(true);
    expect((await bed.delPod(pod)).code).toBe(0);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
  });
});

describe('the release (npm run release)', () => {
  it('publishes portmap-<version>-linux-<arch> and its SHA-256 file; --version says package.json\'s version', async () => {
    const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const out = join(ROOT, '.cache', `release-test-${process.pid}`);
    try {
      const res = await sh([process.execPath, join(ROOT, 'scripts', 'release.mjs'), '--no-build', '--out', out], { timeoutMs: 120_000 });
      const arch = process.arch === 'x64' ? 'amd64' : process.arch;
      const name = `portmap-${version}-linux-${arch}`;
      expect(res.stdout).toContain(join(out, name));
      expect(readdirSync(out).sort()).toEqual([name, `${name}.sha256`]);
      expect(readFileSync(join(out, name)).equals(readFileSync(EXECUTABLE))).toBe(true);
      expect(statSync(join(out, name)).mode & 0o777).toBe(0o755);
      expect(spawnSync('sha256sum', ['-c', `${name}.sha256`], { cwd: out, encoding: 'utf8' }).stdout).toBe(`${name}: OK\n`);
      const reported = spawnSync(join(out, name), ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } }).stdout;
      expect(reported.split('\n')[0]).toBe(`portmap ${version}`);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('install: configuration files and keeping it installed (temporary directories)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portmap-install-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const exe = (args: string[], ok: number[] = []) => sh([EXECUTABLE, 'install', '--cni-bin-dir', join(dir, 'bin'), ...args], { ok });

  it('turns a single-plugin .conf into a .conflist the runtime loads first, keeping the old file aside', async () => {
    const conf = join(dir, 'conf1');
    mkdirSync(conf);
    const text = '{\n  "cniVersion": "0.4.0",\n  "name": "mynet",\n  "type": "bridge",\n  "bridge": "cni0"\n}\n';
    writeFileSync(join(conf, '10-mynet.conf'), text, { mode: 0o640 });
    writeFileSync(join(conf, '20-other.conflist'), '{"name":"o","plugins":[{"type":"bridge"}]}');
    const res = await exe(['--chain', '--cni-conf-dir', conf]);
    expect(res.stdout).toContain(`added portmap to ${join(conf, '10-mynet.conflist')} (the old file is kept as ${join(conf, '10-mynet.conf.orig')})`);
    expect(readdirSync(conf).sort()).toEqual(['10-mynet.conf.orig', '10-mynet.conflist', '20-other.conflist']);
    expect(readFileSync(join(conf, '10-mynet.conf.orig'), 'utf8')).toBe(text);
    expect(statSync(join(conf, '10-mynet.conflist')).mode & 0o777).toBe(0o640);
    const list = JSON.parse(readFileSync(join(conf, '10-mynet.conflist'), 'utf8')) as Record<string, unknown>;
    expect(list).toEqual({ cniVersion: '0.4.0', name: 'mynet', plugins: [JSON.parse(text), { type: 'portmap', capabilities: { portMappings: true } }] });
  });

  it('refuses a .conf holding a plugins list and a directory without configuration, changing nothing there', async () => {
    const conf = join(dir, 'conf2');
    mkdirSync(conf);
    const text = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}';
    writeFileSync(join(conf, '05-n.conf'), text);
    const bad = await exe(['--chain', '--cni-conf-dir', conf], [1]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/05-n\.conf holds a "plugins" list, but runtimes read a \.conf file as one plugin and skip this one \(a silent no-op/);
    expect(readFileSync(join(conf, '05-n.conf'), 'utf8')).toBe(text);
    const none = await exe(['--chain', '--cni-conf-dir', join(dir, 'missing')], [1]);
    expect(none.stderr).toMatch(/no CNI network configuration in .*missing: install the main network plugin first/);
  });

  it('--repeat puts portmap back when the network plugin rewrites its conflist, and exits on SIGTERM', async () => {
    const conf = join(dir, 'conf3');
    mkdirSync(conf);
    const bare = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"flannel"}]}\n';
    writeFileSync(join(conf, '10-flannel.conflist'), bare);
    await exe([]); // the binary is in place: the first run finds it so
    const child = spawn(EXECUTABLE, ['install', '--cni-bin-dir', join(dir, 'bin'), '--chain', '--cni-conf-dir', conf, '--repeat', '1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const waitFor = async (what: () => boolean) => {
      for (let i = 0; i < 100 && !what(); i++) await new Promise((r) => setTimeout(r, 100));
      return what();
    };
    expect(await waitFor(() => readFileSync(join(conf, '10-flannel.conflist'), 'utf8').includes('portmap'))).toBe(true);
    writeFileSync(join(conf, '10-flannel.conflist'), bare); // flannel restarts and writes its file again
    expect(await waitFor(() => readFileSync(join(conf, '10-flannel.conflist'), 'utf8').includes('portmap'))).toBe(true);
    expect(await waitFor(() => (output.match(/added portmap to/g) ?? []).length === 2)).toBe(true);
    // Two reports (the first run, the run that re-chained): the repeats in between changed nothing and said nothing.
    expect(output.match(/is already this executable/g)).toHaveLength(2);
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exit).toBe(0);
  });
});

/** The README's code block whose first line starts with `first`. */
function readmeBlock(first: string): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!.trimEnd().split('\n'));
  const block = blocks.find((b) => b[0]!.startsWith(first));
  if (!block) throw new Error(`README has no sh block starting with ${JSON.stringify(first)}`);
  return block;
}

interface Pasted {
  /** Exit status of each line, in order. */
  codes: Array<{ line: string; code: number }>;
  /** sha256 of each file in /opt/cni/bin afterwards. */
  bin: Record<string, string>;
  conflist: string;
}

/**
 * Runs README lines as pasted into a root shell, on a stand-in node: a private mount and network
 * namespace (nothing of the host changes) with an empty tmpfs over /opt (a fresh node: no /opt/cni)
 * and over /etc/cni/net.d (holding `conflist`), in a directory holding the release files.
 */
async function paste(lines: string[], work: string, conflist: string, reference = false): Promise<Pasted> {
  const script = [
    'mount -t tmpfs tmpfs /opt && mount -t tmpfs tmpfs /etc/cni/net.d || exit 99',
    `echo ${Buffer.from(conflist).toString('base64')} | base64 -d > /etc/cni/net.d/10-flannel.conflist`,
    ...(reference ? [`mkdir -p /opt/cni/bin && cp ${REFERENCE_PORTMAP} /opt/cni/bin/portmap`] : []),
    `cd ${work}`,
    ...lines.flatMap((l) => [l, `echo "@@code $?"`]),
    'for f in /opt/cni/bin/* /opt/cni/bin/.[!.]*; do [ -e "$f" ] && echo "@@bin $(basename "$f") $(sha256sum < "$f" | cut -d" " -f1)"; done',
    'echo "@@conflist $(base64 -w0 /etc/cni/net.d/10-flannel.conflist)"',
  ].join('\n');
  const res = await sh(['unshare', '--mount', '--net', '--propagation', 'private', 'bash', '-c', script], { timeoutMs: 120_000, ok: [1, 2, 99] });
  const codes = [...res.stdout.matchAll(/^@@code (\d+)$/gm)].map((m, i) => ({ line: lines[i]!, code: Number(m[1]) }));
  const bin = Object.fromEntries([...res.stdout.matchAll(/^@@bin (\S+) ([0-9a-f]+)$/gm)].map((m) => [m[1]!, m[2]!]));
  const conf = /^@@conflist (\S*)$/m.exec(res.stdout)?.[1] ?? '';
  if (codes.length !== lines.length) throw new Error(`the pasted lines did not all run: ${res.stdout}${res.stderr}`);
  return { codes, bin, conflist: Buffer.from(conf, 'base64').toString('utf8') };
}

describe('the README\'s node procedures, pasted as written (stand-in node: private mount + network namespace)', () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const file = `portmap-${version}-linux-${arch}`;
  const flannel = '{\n  "name": "cbr0",\n  "cniVersion": "0.3.1",\n  "plugins": [\n    { "type": "flannel", "delegate": { "hairpinMode": true } }\n  ]\n}\n';
  const hash = (f: string) => createHash('sha256').update(readFileSync(f)).digest('hex');
  let work: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'portmap-readme-'));
    await sh([process.execPath, join(ROOT, 'scripts', 'release.mjs'), '--no-build', '--out', work], { timeoutMs: 120_000 });
    // "the new release file" of the upgrade: other bytes (another build), named as the README names it.
    const next = readmeBlock('sha256sum -c portmap-0.2.0')[2]!.split(' ')[0]!.slice(2);
    copyFileSync(join(work, file), join(work, next));
    appendFileSync(join(work, next), '\n');
    writeFileSync(join(work, `${next}.sha256`), `${hash(join(work, next))}  ${next}\n`);
  }, 120_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('names this version\'s release file', () => {
    expect(readmeBlock('sha256sum -c portmap-')[0]).toBe(`sha256sum -c ${file}.sha256`);
  });

  it('a fresh node: install creates /opt/cni/bin and chains; the upgrade keeps the old version; its rollback puts it back', async () => {
    const install = readmeBlock(`sha256sum -c ${file}`);
    const upgrade = readmeBlock('sha256sum -c portmap-0.2.0');
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const undo = /An upgrade: `([^`]+)`/.exec(readme)![1]!;
    const r = await paste([...install, ...upgrade, undo], work, flannel);
    for (const { line, code } of r.codes) {
      // doctor reports findings of this bare stand-in node (ip_forward off...) with status 1.
      expect(code, line).toBe(line.includes(' doctor') ? (code === 1 ? 1 : 0) : 0);
    }
    expect(r.bin.portmap).toBe(hash(join(work, file)));
    expect(Object.keys(r.bin).sort()).toEqual(['portmap', 'portmap.previous']);
    const chained = JSON.parse(r.conflist) as { plugins: Array<Record<string, unknown>> };
    expect(chained.plugins.map((p) => p.type)).toEqual(['flannel', 'portmap']);
    expect(r.conflist.startsWith(flannel.slice(0, flannel.indexOf('  ]')).trimEnd())).toBe(true);
  });

  it('a node with the reference plugin: install, then the rollback block puts the reference back', async () => {
    const install = readmeBlock(`sha256sum -c ${file}`);
    const back = readmeBlock('/opt/cni/bin/portmap uninstall');
    const r = await paste([...install, ...back], work, flannel, true);
    for (const { line, code } of r.codes) expect(code, line).toBe(line.includes(' doctor') ? (code === 1 ? 1 : 0) : 0);
    expect(r.bin).toEqual({ portmap: hash(REFERENCE_PORTMAP) });
  });
});

describe('install: concurrent runs (own network namespace for the install lock)', () => {
  it('eight installs at once over the reference plugin: one replaces it and keeps it as portmap.orig, the others find it done', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portmap-concurrent-'));
    try {
      mkdirSync(join(dir, 'bin'));
      copyFileSync(REFERENCE_PORTMAP, join(dir, 'bin', 'portmap'));
      const script = Array.from({ length: 8 }, (_, i) => `${EXECUTABLE} install --cni-bin-dir ${join(dir, 'bin')} > ${join(dir, `out${i}`)} 2>&1 & `).join('') + 'wait';
      await sh(['unshare', '--net', 'bash', '-c', script], { timeoutMs: 120_000 });
      const outs = Array.from({ length: 8 }, (_, i) => readFileSync(join(dir, `out${i}`), 'utf8'));
      expect(outs.filter((o) => o.includes('kept the plugin it replaced as'))).toHaveLength(1);
      expect(outs.filter((o) => o.includes('is already this executable: nothing to do'))).toHaveLength(7);
      expect(readFileSync(join(dir, 'bin', 'portmap.orig')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
      expect(readFileSync(join(dir, 'bin', 'portmap')).equals(readFileSync(EXECUTABLE))).toBe(true);
      expect(readdirSync(join(dir, 'bin')).sort()).toEqual(['portmap', 'portmap.orig']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('uninstall refuses what the reference plugin could not take over, changing nothing', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ plugin: EXECUTABLE, portmap: { backend: 'nftables', conditionsV4: ['ip', 'saddr', '!=', '192.0.2.99'] } });
  });
  afterAll(() => bed?.destroy());

  it('a pod with nftables conditions: exit 1 naming it; our table, iptables and the bin dir as they were', async () => {
    const pod = await bed.addPod([{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'cond', 80);
    const before = (await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout;
    const binBefore = readdirSync(bed.binDir).sort();
    const res = await inNs(bed.node, [EXECUTABLE, 'uninstall', '--cni-bin-dir', bed.binDir, '--reference', REFERENCE_PORTMAP, '--data-dir', bed.dataDir], { ok: [1] });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`nothing was changed: 1 forward(s) cannot be converted:\n  testnet/${pod.id}/eth0 has forwards with conditionsV4/conditionsV6`);
    expect((await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])).stdout).toBe(before);
    expect(dnChains(await natSave(bed))).toEqual([]);
    expect(readdirSync(bed.binDir).sort()).toEqual(binBefore);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('cond');
    // Once that pod is gone, it goes through.
    expect((await bed.delPod(pod)).code).toBe(0);
    const ok = await inNs(bed.node, [EXECUTABLE, 'uninstall', '--cni-bin-dir', bed.binDir, '--reference', REFERENCE_PORTMAP, '--data-dir', bed.dataDir, '--json']);
    const report = JSON.parse(ok.stdout) as { attachments: unknown[]; binary: { action: string }; table: string };
    expect(report).toMatchObject({ attachments: [], binary: { action: 'copy' }, table: 'inet cni_portmap' });
    expect(readFileSync(join(bed.binDir, 'portmap')).equals(readFileSync(REFERENCE_PORTMAP))).toBe(true);
    expect(await hasOurTable(bed)).toBe(false);
  });
});
