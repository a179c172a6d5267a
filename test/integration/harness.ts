/**
 * The real test bed: network namespaces for a "node" (where every rule lives), a "client" on the
 * node's uplink, and pods attached by the real bridge + host-local plugins through a real libcni
 * runtime (test/runtime/cnirun). Nothing here touches the root namespace's ruleset; all traffic goes to
 * addresses inside namespaces the test bed created.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { run, type RunResult } from '../../src/host/exec.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const PLUGIN = join(ROOT, 'dist', 'portmap');
export const CNIRUN = join(ROOT, '.cache', 'cnirun');
export const REFERENCE_PORTMAP = '/usr/lib/cni/portmap';
const ECHO_SERVER = join(ROOT, 'test', 'integration', 'echo-server.mjs');
const ECHO_CLIENT = join(ROOT, 'test', 'integration', 'echo-client.mjs');

export const NODE_V4 = '192.0.2.1';
export const CLIENT_V4 = '192.0.2.2';
export const NODE_V6 = '2001:db8::1';
export const CLIENT_V6 = '2001:db8::2';
/** A second node address: hostIP tests bind to one and check the other is not forwarded. */
export const NODE_V4_B = '192.0.2.10';

/**
 * Starts the echo server under `enter` (the command that enters a network namespace: `ip netns exec
 * NS`, `nsenter --net=PATH`); resolves with its process once it listens (one that does not start
 * in 30 s is killed).
 */
export async function startEchoServer(enter: readonly string[], tag: string, port: number): Promise<ChildProcess> {
  const [cmd, ...args] = enter;
  const child = spawn(cmd!, [...args, process.execPath, ECHO_SERVER, tag, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((ok, fail) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`echo server ${tag} did not start`));
    }, 30_000);
    child.stdout!.once('data', () => {
      clearTimeout(t);
      ok();
    });
    child.once('exit', (code) => fail(new Error(`echo server ${tag} exited with ${code}`)));
  });
  return child;
}

export interface PortMappingInput {
  hostPort: number;
  containerPort: number;
  protocol?: string;
  hostIP?: string;
}

export interface Pod {
  id: string;
  netns: string;
  netnsPath: string;
  ip4?: string;
  ip6?: string;
  result: Record<string, unknown>;
  mappings: PortMappingInput[];
  ifname: string;
  /** The runtime's CNI_ARGS pairs for this pod's calls ("K=V;K=V"), if any. */
  args?: string;
  /** What the ADD wrote on stderr (libcni passes on the plugins' stderr of a call that succeeded). */
  addStderr?: string;
}

export interface BedOptions {
  /** Extra keys for the portmap plugin object of the conflist. */
  portmap?: Record<string, unknown>;
  cniVersion?: string;
  /** The plugin binary installed as `portmap` in CNI_PATH (default: the bundle). */
  plugin?: string;
  subnet4?: string;
  subnet6?: string;
  /** Environment for every plugin call (e.g. PATH without node). */
  env?: NodeJS.ProcessEnv;
  /** The plugin's `dataDir` (attachment records); default: a directory of this test bed. */
  dataDir?: string;
}

export async function sh(args: string[], opts: { input?: string; ok?: number[]; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const [cmd, ...rest] = args;
  return run(cmd!, rest, {
    ...(opts.input !== undefined ? { input: opts.input } : {}),
    ...(opts.ok ? { okCodes: opts.ok } : {}),
    timeoutMs: opts.timeoutMs ?? 30_000,
    ...(opts.env ? { env: opts.env } : {}),
  });
}

export const inNs = (ns: string, args: string[], opts: Parameters<typeof sh>[1] = {}): Promise<RunResult> =>
  sh(['ip', 'netns', 'exec', ns, ...args], opts);

export class TestBed {
  readonly prefix: string;
  readonly node: string;
  readonly client: string;
  readonly dir: string;
  readonly binDir: string;
  readonly conflist: string;
  readonly cacheDir: string;
  readonly networkName: string;
  /** Where the plugin keeps its attachment records (the conflist's `dataDir`). */
  readonly dataDir: string;
  private readonly servers: ChildProcess[] = [];
  private readonly namespaces: string[] = [];
  private podCount = 0;

  private constructor(readonly opts: BedOptions) {
    this.prefix = `pm${randomBytes(3).toString('hex')}`;
    this.node = `${this.prefix}-node`;
    this.client = `${this.prefix}-client`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.binDir = join(this.dir, 'bin');
    this.cacheDir = join(this.dir, 'cache');
    this.networkName = 'testnet';
    this.conflist = join(this.dir, 'net.conflist');
    this.dataDir = opts.dataDir ?? join(this.dir, 'records');
  }

  static async create(opts: BedOptions = {}): Promise<TestBed> {
    const bed = new TestBed(opts);
    await bed.setup();
    return bed;
  }

  private async setup(): Promise<void> {
    mkdirSync(this.binDir);
    for (const p of ['bridge', 'host-local', 'loopback']) copyFileSync(`/usr/lib/cni/${p}`, join(this.binDir, p));
    symlinkSync(this.opts.plugin ?? PLUGIN, join(this.binDir, 'portmap'));
    this.writeConflist(this.opts.portmap ?? {});
    for (const ns of [this.node, this.client]) await this.newNs(ns);
    await inNs(this.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
    await sh(['ip', 'link', 'add', 'up0', 'netns', this.node, 'type', 'veth', 'peer', 'name', 'up0', 'netns', this.client]);
    await sh(['ip', '-n', this.node, 'addr', 'add', `${NODE_V4}/24`, 'dev', 'up0']);
    await sh(['ip', '-n', this.node, 'addr', 'add', `${NODE_V4_B}/24`, 'dev', 'up0']);
    await sh(['ip', '-n', this.node, 'addr', 'add', `${NODE_V6}/64`, 'dev', 'up0', 'nodad']);
    await sh(['ip', '-n', this.client, 'addr', 'add', `${CLIENT_V4}/24`, 'dev', 'up0']);
    await sh(['ip', '-n', this.client, 'addr', 'add', `${CLIENT_V6}/64`, 'dev', 'up0', 'nodad']);
    await sh(['ip', '-n', this.node, 'link', 'set', 'up0', 'up']);
    await sh(['ip', '-n', this.client, 'link', 'set', 'up0', 'up']);
  }

  /** Rewrites the conflist (bridge + host-local + portmap with these extra keys). */
  writeConflist(portmap: Record<string, unknown>, name = this.networkName): void {
    const conf = {
      cniVersion: this.opts.cniVersion ?? '1.0.0',
      name,
      plugins: [
        {
          type: 'bridge',
          bridge: 'cni0',
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: this.opts.subnet4 ?? '10.244.0.0/24' }], [{ subnet: this.opts.subnet6 ?? 'fd00:244::/64' }]],
            routes: [{ dst: '0.0.0.0/0' }, { dst: '::/0' }],
            dataDir: join(this.dir, 'ipam'),
          },
        },
        { type: 'portmap', capabilities: { portMappings: true }, dataDir: this.dataDir, ...portmap },
      ],
    };
    writeFileSync(this.conflist, JSON.stringify(conf, null, 2));
  }

  private async newNs(ns: string): Promise<void> {
    await sh(['ip', 'netns', 'add', ns]);
    this.namespaces.push(ns);
    await inNs(ns, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
    await inNs(ns, ['ip', 'link', 'set', 'lo', 'up']);
  }

  runtimeEnv(containerId: string, mappings?: PortMappingInput[], ifname = 'eth0', args?: string): NodeJS.ProcessEnv {
    return {
      ...process.env,
      ...this.opts.env,
      CNI_PATH: this.binDir,
      CONTAINER_ID: containerId,
      IFNAME: ifname,
      CNI_CACHE_DIR: this.cacheDir,
      ...(mappings ? this.capArgs(mappings) : {}),
      ...(args ? { RUNTIME_ARGS: args } : {}),
    };
  }

  /** The CNI_ARGS a Kubernetes runtime passes for a pod (containerd's pairs, IgnoreUnknown first). */
  static podArgs(namespace: string, name: string, containerId: string): string {
    return `IgnoreUnknown=1;K8S_POD_NAMESPACE=${namespace};K8S_POD_NAME=${name};K8S_POD_INFRA_CONTAINER_ID=${containerId}`;
  }

  /** The runtime's capability args: in the environment, or in a file when too large for it (128 KiB). */
  private capArgs(mappings: PortMappingInput[]): NodeJS.ProcessEnv {
    const caps = JSON.stringify({ portMappings: mappings });
    if (caps.length < 100_000) return { CAP_ARGS: caps };
    const file = join(this.dir, `caps-${randomBytes(4).toString('hex')}.json`);
    writeFileSync(file, caps);
    return { CAP_ARGS_FILE: file };
  }

  /**
   * ADD through libcni: a new pod namespace attached by bridge + host-local, then portmap. `args`: the
   * runtime's CNI_ARGS pairs for the pod's calls (see podArgs).
   */
  async addPod(mappings: PortMappingInput[], opts: { id?: string; ifname?: string; args?: string } = {}): Promise<Pod> {
    const n = ++this.podCount;
    const id = opts.id ?? `${this.prefix}-c${n}`;
    const netns = `${this.prefix}-p${n}`;
    await this.newNs(netns);
    const netnsPath = `/var/run/netns/${netns}`;
    const ifname = opts.ifname ?? 'eth0';
    const res = await inNs(this.node, [CNIRUN, 'add', this.conflist, netnsPath], { env: this.runtimeEnv(id, mappings, ifname, opts.args) });
    const result = JSON.parse(res.stdout) as { ips?: Array<{ address: string }> };
    const ips = (result.ips ?? []).map((i) => i.address.split('/')[0]!);
    const ip4 = ips.find((a) => !a.includes(':'));
    const ip6 = ips.find((a) => a.includes(':'));
    return {
      id, netns, netnsPath, result: result as Record<string, unknown>, mappings, ifname,
      ...(ip4 ? { ip4 } : {}), ...(ip6 ? { ip6 } : {}), ...(opts.args ? { args: opts.args } : {}), addStderr: res.stderr,
    };
  }

  /** DEL through libcni (with the cached prevResult; mappings only when given, as cnitool does). */
  async delPod(pod: Pod, opts: { withMappings?: boolean } = {}): Promise<RunResult> {
    const mappings = opts.withMappings === false ? undefined : pod.mappings;
    return inNs(this.node, [CNIRUN, 'del', this.conflist, pod.netnsPath], { env: this.runtimeEnv(pod.id, mappings, pod.ifname, pod.args) });
  }

  async checkPod(pod: Pod): Promise<RunResult> {
    return inNs(this.node, [CNIRUN, 'check', this.conflist, pod.netnsPath], { env: this.runtimeEnv(pod.id, pod.mappings, pod.ifname, pod.args), ok: [1] });
  }

  /** Runs the plugin directly in the node namespace, as a runtime would (env + stdin). */
  async plugin(env: Record<string, string>, config: Record<string, unknown>, ok: number[] = [1]): Promise<RunResult & { json?: Record<string, unknown> }> {
    const res = await inNs(this.node, [this.opts.plugin ?? PLUGIN], {
      input: JSON.stringify(config),
      env: { ...process.env, ...this.opts.env, CNI_PATH: this.binDir, ...env },
      ok,
    });
    let json: Record<string, unknown> | undefined;
    try {
      json = res.stdout.trim() ? (JSON.parse(res.stdout) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    return { ...res, ...(json ? { json } : {}) };
  }

  /** The portmap plugin's own config object as the runtime would send it (without prevResult). */
  portmapConfig(extra: Record<string, unknown> = {}, cniVersion = this.opts.cniVersion ?? '1.0.0'): Record<string, unknown> {
    return { cniVersion, name: this.networkName, type: 'portmap', capabilities: { portMappings: true }, dataDir: this.dataDir, ...this.opts.portmap, ...extra };
  }

  /** Starts the echo server in a namespace; resolves when it listens. */
  async serve(ns: string, tag: string, port: number): Promise<void> {
    this.servers.push(await startEchoServer(['ip', 'netns', 'exec', ns], tag, port));
  }

  /** One request from a namespace; resolves with the reply ("<tag> <peer>") or undefined on no answer. */
  async request(ns: string, proto: 'tcp' | 'udp', host: string, port: number, opts: { timeoutMs?: number; sourcePort?: number } = {}): Promise<string | undefined> {
    const args = [process.execPath, ECHO_CLIENT, proto, host, String(port), String(opts.timeoutMs ?? 2000)];
    if (opts.sourcePort) args.push(String(opts.sourcePort));
    const res = await inNs(ns, args, { ok: [1] });
    return res.code === 0 ? res.stdout.trim() : undefined;
  }

  async ruleset(ns = this.node): Promise<string> {
    return (await inNs(ns, ['nft', 'list', 'ruleset'])).stdout;
  }

  async destroy(): Promise<void> {
    for (const s of this.servers) s.kill('SIGKILL');
    for (const ns of this.namespaces.reverse()) {
      await sh(['ip', 'netns', 'del', ns], { ok: [1, 255] }).catch(() => undefined);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Parses the first line of a reply into [tag, peer]. */
export function reply(text: string | undefined): { tag?: string; peer?: string } {
  const [tag, peer] = (text ?? '').split(' ');
  return { ...(tag ? { tag } : {}), ...(peer ? { peer } : {}) };
}
