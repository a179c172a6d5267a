/**
 * containerd (Debian's package, with its CRI plugin) as the CNI caller of a test bed: started inside the
 * bed's node namespace with its own root, state, socket and runc root under a temporary directory, the
 * CNI bin_dir holding Debian's bridge, host-local and loopback and our plugin (behind a recorder, see
 * recorder.ts) as `portmap`, conf_dir holding the bed's conflist, and an offline sandbox image. Driven
 * over CRI (client.ts). destroy() removes everything it made, also after a failure half-way.
 *
 * `nsenter --net` and not `ip netns exec`: the latter remounts /sys, and runc then finds no cgroups.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type PortMappingInput, type TestBed, sh, startEchoServer } from '../harness.js';
import { type CriPortMapping, CriClient, type SandboxStatus } from './client.js';
import { buildPauseImage } from './image.js';
import { type RecordedCall, installRecorder, readCalls } from './recorder.js';

export const CONTAINERD = '/usr/bin/containerd';
/** containerd 1.6 puts shim sockets here whatever its state dir (runtime/v2/shim: sha256 of address/namespace/id). */
const SHIM_SOCKET_DIR = '/run/containerd/s';
/** And libcni, as containerd 1.6 calls it, keeps its results here (no setting for it). */
const LIBCNI_CACHE = '/var/lib/cni/results';
const CRI_NAMESPACE = 'k8s.io';
const CGROUP_ROOT = '/sys/fs/cgroup';

/** rmdir that ignores "not empty" and "not there" (a cgroup with tasks left, a directory in use). */
function rmdirQuietly(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // left as it is
  }
}

export interface ContainerdOptions {
  /** The plugin executable containerd runs (through the recorder) as `portmap`. */
  plugin: string;
  /** Keys for the portmap object of the conflist (e.g. the backend). */
  portmap: Record<string, unknown>;
}

export interface CriPod {
  id: string;
  name: string;
  status: SandboxStatus;
  netnsPath: string;
  ip4: string;
  ip6: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const toCri = (m: PortMappingInput): CriPortMapping => ({
  protocol: (m.protocol ?? 'tcp').toUpperCase() as CriPortMapping['protocol'],
  containerPort: m.containerPort,
  hostPort: m.hostPort,
  ...(m.hostIP ? { hostIp: m.hostIP } : {}),
});

export class Containerd {
  readonly dir: string;
  readonly socket: string;
  readonly callLog: string;
  readonly networkName: string;
  readonly cri: CriClient;
  private readonly runcRoot: string;
  /** The sandboxes' cgroup parent (cgroupfs), of this instance only: not the shared /k8s.io. */
  private readonly cgroupParent: string;
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  /** Sandboxes run and not yet removed (destroy removes them through CRI first). */
  private readonly live = new Set<string>();
  private readonly everyId = new Set<string>();
  private readonly servers: ChildProcess[] = [];
  /** Whether /run/containerd was there before (the shims make /run/containerd/s; we remove it only if we caused it). */
  private readonly runDirExisted = existsSync('/run/containerd');

  private constructor(readonly bed: TestBed, readonly opts: ContainerdOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `${bed.prefix}-ctd-`));
    this.socket = join(this.dir, 'containerd.sock');
    this.callLog = join(this.dir, 'portmap-calls.jsonl');
    this.runcRoot = join(this.dir, 'runc');
    this.networkName = `${bed.prefix}-net`;
    this.cgroupParent = `portmap-test-${bed.prefix}`;
    this.cri = new CriClient(this.socket);
  }

  /** Starts containerd in the bed's node namespace and imports the sandbox image; throws with its log on failure. */
  static async start(bed: TestBed, opts: ContainerdOptions): Promise<Containerd> {
    const c = new Containerd(bed, opts);
    try {
      await c.setup();
    } catch (err) {
      const log = c.log().slice(-4000);
      await c.destroy();
      throw new Error(`containerd did not start: ${(err as Error).message}\n--- containerd log ---\n${log}`, { cause: err });
    }
    return c;
  }

  log(): string {
    try {
      return readFileSync(join(this.dir, 'containerd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  private async setup(): Promise<void> {
    const binDir = join(this.dir, 'bin');
    const confDir = join(this.dir, 'net.d');
    mkdirSync(binDir);
    mkdirSync(confDir);
    for (const p of ['bridge', 'host-local', 'loopback']) copyFileSync(`/usr/lib/cni/${p}`, join(binDir, p));
    installRecorder(join(binDir, 'portmap'), this.opts.plugin, this.callLog);
    // The bed's conflist (bridge + host-local, IPv4 and IPv6, portmap with the portMappings capability)
    // under a name of this bed: containerd's libcni results go to the host's /var/lib/cni.
    this.bed.writeConflist(this.opts.portmap, this.networkName);
    copyFileSync(this.bed.conflist, join(confDir, '10-portmap-test.conflist'));

    const image = buildPauseImage(join(this.dir, 'pause.tar'));
    const toml = `version = 2
root = ${JSON.stringify(join(this.dir, 'root'))}
state = ${JSON.stringify(join(this.dir, 'state'))}
# Plugins that would touch /opt or need kernel features or services this test does not use.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = ${JSON.stringify(this.socket)}

[plugins."io.containerd.grpc.v1.cri"]
  # The offline image imported below: RunPodSandbox pulls nothing.
  sandbox_image = ${JSON.stringify(image.ref)}
  # This machine lacks CAP_SYS_RESOURCE: without it runc fails with "oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  # Pod namespaces under the state dir, not in the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    # native: plain copies, no overlay mounts to clean up.
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = ${JSON.stringify(this.runcRoot)}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${JSON.stringify(binDir)}
    conf_dir = ${JSON.stringify(confDir)}
    max_conf_num = 1
`;
    const config = join(this.dir, 'config.toml');
    writeFileSync(config, toml);

    const logFd = openSync(join(this.dir, 'containerd.log'), 'a');
    try {
      this.proc = spawn('nsenter', [`--net=/var/run/netns/${this.bed.node}`, CONTAINERD, '--config', config], { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    const proc = this.proc;
    let exitCode: number | null | undefined;
    this.exited = new Promise((r) => proc.once('exit', (code) => {
      exitCode = code;
      r();
    }));
    const t0 = Date.now();
    for (;;) {
      if (exitCode !== undefined) throw new Error(`containerd exited with ${exitCode}`);
      try {
        await this.cri.version(1000);
        break;
      } catch (err) {
        if (Date.now() - t0 > 20_000) throw err;
        await sleep(100);
      }
    }
    await sh(['ctr', '-n', CRI_NAMESPACE, '--address', this.socket, 'images', 'import', '--snapshotter', 'native', image.tarball]);
  }

  /** RunPodSandbox with these mappings, then its status: IPs and network namespace. */
  async runPod(name: string, mappings: PortMappingInput[]): Promise<CriPod> {
    const id = await this.cri.runPodSandbox({
      name,
      uid: `${this.bed.prefix}-${name}-uid`,
      namespace: 'default',
      portMappings: mappings.map(toCri),
      cgroupParent: `/${this.cgroupParent}`,
    });
    this.live.add(id);
    this.everyId.add(id);
    const status = await this.cri.podSandboxStatus(id);
    const ips = [status.ip, ...status.additionalIps];
    if (!status.netnsPath) throw new Error(`sandbox ${id} has no network namespace in its status`);
    return {
      id,
      name,
      status,
      netnsPath: status.netnsPath,
      ip4: ips.find((a) => a.includes('.')) ?? '',
      ip6: ips.find((a) => a.includes(':')) ?? '',
    };
  }

  async stopPod(id: string): Promise<void> {
    await this.cri.stopPodSandbox(id);
  }

  async removePod(id: string): Promise<void> {
    await this.cri.removePodSandbox(id);
    this.live.delete(id);
  }

  /** The plugin calls containerd made so far (through the recorder). */
  calls(): RecordedCall[] {
    return readCalls(this.callLog);
  }

  /** Starts the echo server inside a pod's network namespace; resolves when it listens. */
  async serve(pod: CriPod, tag: string, port: number): Promise<ChildProcess> {
    const child = await startEchoServer(['nsenter', `--net=${pod.netnsPath}`], tag, port);
    this.servers.push(child);
    return child;
  }

  /** Stops the echo servers (they would keep a removed pod's network namespace alive). */
  stopServers(): void {
    for (const s of this.servers.splice(0)) s.kill('SIGKILL');
  }

  /** Everything this instance made goes: sandboxes, containerd, shims, pause processes, mounts, files. */
  async destroy(): Promise<void> {
    this.stopServers();
    const problems: string[] = [];
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      // Through CRI first, so that CNI DEL runs and the bed's node namespace is left as a kubelet would.
      for (const id of this.live) {
        try {
          await this.cri.stopPodSandbox(id, 20_000);
          await this.cri.removePodSandbox(id, 20_000);
        } catch (err) {
          problems.push(`sandbox ${id}: ${(err as Error).message}`);
        }
      }
      this.proc.kill('SIGTERM');
      const stopped = await Promise.race([this.exited.then(() => true), sleep(5000).then(() => false)]);
      if (!stopped) {
        this.proc.kill('SIGKILL');
        await this.exited;
      }
    }
    this.cri.close();
    // Containers left running (a kill -9 of containerd or of a shim): runc's state is in our root, per namespace.
    const runc = join(this.runcRoot, CRI_NAMESPACE);
    if (existsSync(runc)) {
      const ids = (await sh(['runc', '--root', runc, 'list', '-q'], { ok: [1] }).catch(() => ({ stdout: '' }))).stdout.split('\n').filter(Boolean);
      for (const id of ids) await sh(['runc', '--root', runc, 'delete', '--force', id], { ok: [1] }).catch(() => undefined);
    }
    for (const pid of this.shims()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    for (const id of this.everyId) {
      const hash = createHash('sha256').update(join(this.socket, CRI_NAMESPACE, id)).digest('hex');
      rmSync(join(SHIM_SOCKET_DIR, hash), { force: true });
      for (const f of [`${this.networkName}-${id}-eth0`, `cni-loopback-${id}-lo`]) rmSync(join(LIBCNI_CACHE, f), { force: true });
    }
    // Mounts under our directory (the sandboxes' /dev/shm, network namespaces, rootfs bind mounts), deepest first.
    for (const m of this.mounts().sort((a, b) => b.length - a.length)) {
      await sh(['umount', '-l', m], { ok: [1, 32] }).catch(() => undefined);
    }
    // The sandboxes' cgroups (runc removes them on delete; a killed shim leaves them), then our parent.
    for (const ctl of readdirSync(CGROUP_ROOT)) {
      const parent = join(CGROUP_ROOT, ctl, this.cgroupParent);
      if (!existsSync(parent)) continue;
      for (const id of this.everyId) rmdirQuietly(join(parent, id));
      rmdirQuietly(parent);
    }
    const left = this.mounts();
    if (left.length) problems.push(`still mounted, not removing ${this.dir}: ${left.join(', ')}`);
    else rmSync(this.dir, { recursive: true, force: true });
    if (!this.runDirExisted) {
      for (const d of [SHIM_SOCKET_DIR, '/run/containerd']) {
        rmdirQuietly(d); // only when empty: another containerd may have started since
      }
    }
    if (problems.length) console.warn(`containerd teardown: ${problems.join('; ')}`);
  }

  /** PIDs of containerd-shim-runc-v2 processes of this containerd (their -address is our socket). */
  private shims(): number[] {
    const pids: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let argv: string[];
      try {
        argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      } catch {
        continue;
      }
      if (!argv[0]?.endsWith('containerd-shim-runc-v2')) continue;
      const i = argv.indexOf('-address');
      if (i >= 0 && argv[i + 1] === this.socket) pids.push(Number(entry));
    }
    return pids;
  }

  private mounts(): string[] {
    const prefix = `${this.dir}/`;
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .map((p) => p.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
      .filter((p) => p.startsWith(prefix));
  }
}
