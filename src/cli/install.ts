/**
 * `portmap install`: puts the running executable into the CNI bin directory as `portmap`, atomically,
 * keeping what it replaces, and with --chain adds portmap to the conflist the runtime loads.
 *
 * Backups beside the plugin (never loaded by a runtime: it execs plugins by their exact type name):
 *   portmap.orig      the other plugin (the reference portmap) that the first install of ours replaced;
 *                     `portmap uninstall` puts it back.
 *   portmap.previous  the version of ours that the latest install replaced: rolling an upgrade back is
 *                     `/opt/cni/bin/portmap.previous install` (that version installs itself again).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run } from '../host/exec.js';
import { acquireLock } from '../host/lock.js';
import { parseCidr } from '../net/ip.js';
import { chainPortmap, loadedConfFile, unifiedDiff } from './conflist-chain.js';
import { commitTemp, fileContains, keepAs, ownershipOf, sameContent, stageCopy, writeAtomic } from '../host/durable-files.js';
import { BINARY_MARKER, type RunningExecutable, runningExecutable } from './executable.js';
import { usageExit } from './usage.js';
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CNI_CONF_DIR } from './cni-dirs.js';
import { releaseFile } from './version.js';

export const PLUGIN_NAME = 'portmap';
export const ORIG_SUFFIX = '.orig';
export const PREVIOUS_SUFFIX = '.previous';

export const INSTALL_HELP = `Usage: portmap install [--cni-bin-dir DIR] [--chain [--kubernetes --service-cidr CIDR]] [OPTIONS]

Installs this executable as the CNI portmap plugin: copies it to DIR/portmap atomically (a temporary
file in DIR renamed over the old one, so a runtime exec'ing the plugin mid-upgrade runs the old file
or the new one). What it replaces is kept: DIR/portmap.orig (another plugin, e.g. the reference
portmap: "portmap uninstall" puts it back) or DIR/portmap.previous (an older version of this one:
"DIR/portmap.previous install" rolls back). Running it again changes nothing. Run it as root.

Options:
  --cni-bin-dir DIR     the CNI plugin directory (default ${DEFAULT_CNI_BIN_DIR}; created if missing)
  --chain               also add {"type": "portmap", "capabilities": {"portMappings": true}} to the
                        plugin list of the conflist the runtime loads (the first .conf, .conflist
                        or .json of the conf dir in byte order), when it has no portmap yet; the
                        rest of the file stays as it is. A single-plugin .conf becomes a .conflist.
  --cni-conf-dir DIR    the CNI configuration directory (default ${DEFAULT_CNI_CONF_DIR})
  --kubernetes          with --chain: add the Service-safe settings ("afterServices": true and the
                        "serviceCIDRs" given with --service-cidr)
  --service-cidr CIDR   the cluster's Service range (repeat, or separate with commas)
  --dry-run             show what would change (the conflist as a diff), change nothing
  --allow-script        install the node-run bundle (it needs node >= 20 on the node's PATH)
  --repeat SECONDS      stay running and apply it again every SECONDS (a DaemonSet's container:
                        puts portmap back when the network plugin rewrites its conflist); exits on
                        SIGTERM
  --json, -j            report as JSON ({"dryRun", "binary", "chain"}; {"error"} when it fails)
  --help, -h            this text

Examples:
  ./${releaseFile()} install --chain --dry-run
  ./${releaseFile()} install --chain --kubernetes --service-cidr 10.96.0.0/12
  /opt/cni/bin/portmap.previous install

Exit status:
  0  installed, or already installed (nothing to do)
  1  failed: the message says why (not root: run it as root); a failed smoke test of the new file
     replaces nothing
  2  usage error (an unknown option, a missing or bad value)
`;

export interface InstallOptions {
  cniBinDir: string;
  cniConfDir: string;
  chain: boolean;
  kubernetes: boolean;
  serviceCIDRs: string[];
  dryRun: boolean;
  json: boolean;
  allowScript: boolean;
  repeatSeconds?: number;
  help: boolean;
}

/** Parses install's arguments (pure). */
export function parseInstallArgs(args: readonly string[]): InstallOptions | { error: string } {
  const o: InstallOptions = {
    cniBinDir: DEFAULT_CNI_BIN_DIR, cniConfDir: DEFAULT_CNI_CONF_DIR, chain: false, kubernetes: false,
    serviceCIDRs: [], dryRun: false, json: false, allowScript: false, help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : args[++i]);
    const flag = (set: () => void) => (eq > 0 ? `${name} takes no value` : (set(), undefined));
    let bad: string | undefined;
    switch (name) {
      case '--cni-bin-dir':
      case '--cni-conf-dir': {
        const v = value();
        if (!v || v.includes('\0')) return { error: `${name} needs a directory` };
        if (name === '--cni-bin-dir') o.cniBinDir = resolve(v);
        else o.cniConfDir = resolve(v);
        break;
      }
      case '--service-cidr': {
        const v = value();
        if (!v) return { error: '--service-cidr needs a CIDR' };
        for (const c of v.split(',').map((s) => s.trim()).filter(Boolean)) {
          try {
            const p = parseCidr(c);
            if (p.address !== p.network) return { error: `--service-cidr ${c}: host bits are set (the range is ${p.network}/${p.prefixLength})` };
            o.serviceCIDRs.push(`${p.network}/${p.prefixLength}`);
          } catch {
            return { error: `--service-cidr ${JSON.stringify(c)} is not a CIDR (e.g. 10.96.0.0/12)` };
          }
        }
        break;
      }
      case '--repeat': {
        const v = value();
        if (!v || !/^\d{1,6}$/.test(v) || Number(v) < 1) return { error: '--repeat needs a number of seconds (1 or more)' };
        o.repeatSeconds = Number(v);
        break;
      }
      case '--chain': bad = flag(() => (o.chain = true)); break;
      case '--kubernetes': bad = flag(() => (o.kubernetes = true)); break;
      case '--dry-run': bad = flag(() => (o.dryRun = true)); break;
      case '--allow-script': bad = flag(() => (o.allowScript = true)); break;
      case '--json': case '-j': bad = flag(() => (o.json = true)); break;
      case '--help': case '-h': o.help = true; break;
      default: return { error: `unknown option ${JSON.stringify(a)}` };
    }
    if (bad) return { error: bad };
  }
  if ((o.kubernetes || o.serviceCIDRs.length > 0) && !o.chain) return { error: '--kubernetes and --service-cidr go with --chain' };
  if (o.serviceCIDRs.length > 0 && !o.kubernetes) return { error: '--service-cidr goes with --kubernetes' };
  if (o.repeatSeconds !== undefined && o.dryRun) return { error: '--repeat and --dry-run exclude each other' };
  return o;
}

export interface BinaryReport {
  path: string;
  source: string;
  /** installed: there was none; replaced: another plugin or version; unchanged: the same bytes. */
  action: 'installed' | 'replaced' | 'unchanged';
  /** Where the replaced file is kept. */
  backup?: string;
  /** What the replaced file was: ours (an earlier version of this plugin) or another plugin. */
  replaced?: 'ours' | 'other';
  createdDir?: boolean;
  version?: string;
}

export interface ChainReport {
  dir: string;
  file?: string;
  action: 'changed' | 'unchanged';
  reason?: string;
  diff?: string;
  warnings: string[];
  /** A single-plugin .conf that became a .conflist is kept under this name. */
  movedAside?: string;
}

export class InstallError extends Error {}

/** Runs the staged file: it must answer VERSION as a CNI plugin and report its own version. */
async function smokeTest(file: string): Promise<string> {
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  const ver = await run(file, [], { input: '{"cniVersion":"1.0.0"}', env: { ...env, CNI_COMMAND: 'VERSION' }, timeoutMs: 20_000 });
  if (!ver.stdout.includes('"supportedVersions"')) throw new InstallError(`${file} did not answer CNI VERSION (${ver.stdout.trim() || ver.stderr.trim()})`);
  const own = await run(file, ['--version'], { env, timeoutMs: 20_000 });
  return /^portmap (\S+)/.exec(own.stdout)?.[1] ?? 'unknown';
}

export function installBinary(source: RunningExecutable, binDir: string, dryRun: boolean): Promise<BinaryReport> {
  return installFile(source.path, binDir, dryRun);
}

export async function installFile(source: string, binDir: string, dryRun: boolean): Promise<BinaryReport> {
  const target = join(binDir, PLUGIN_NAME);
  const report: BinaryReport = { path: target, source, action: 'installed' };
  if (!existsSync(binDir)) {
    report.createdDir = true;
    if (!dryRun) mkdirSync(binDir, { recursive: true, mode: 0o755 });
  } else if (!statSync(binDir).isDirectory()) {
    throw new InstallError(`${binDir} is not a directory`);
  }
  const present = existsSync(target);
  if (present && sameContent(source, target)) return { ...report, action: 'unchanged' };
  if (present) {
    const ours = fileContains(target, BINARY_MARKER);
    report.action = 'replaced';
    report.replaced = ours ? 'ours' : 'other';
    report.backup = target + (ours ? PREVIOUS_SUFFIX : ORIG_SUFFIX);
  }
  if (dryRun) return report;
  const tmp = stageCopy(source, target, { mode: 0o755, ...ownerOf(target) });
  try {
    report.version = await smokeTest(tmp);
    if (report.backup) keepAs(target, report.backup);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  commitTemp(tmp, target);
  return report;
}

const ownerOf = (target: string): { uid?: number; gid?: number } => {
  const o = ownershipOf(target, 0o755);
  return o.uid !== undefined && o.gid !== undefined ? { uid: o.uid, gid: o.gid } : {};
};

/** Adds portmap to the conflist the runtime loads (see conflist-chain.ts). */
export function chainConflist(dir: string, opts: Pick<InstallOptions, 'kubernetes' | 'serviceCIDRs'>, dryRun: boolean): ChainReport {
  const missing = `no CNI network configuration in ${dir}: install the main network plugin first (it writes its conflist there), then run this again`;
  if (!existsSync(dir)) throw new InstallError(missing);
  const names = readdirSync(dir).filter((n) => {
    try {
      return statSync(join(dir, n)).isFile();
    } catch {
      return false;
    }
  });
  const loaded = loadedConfFile(names);
  if (!loaded) throw new InstallError(missing);
  const path = join(dir, loaded);
  const text = readFileSync(path, 'utf8');
  const res = chainPortmap(loaded, text, opts.kubernetes ? { kubernetes: { serviceCIDRs: opts.serviceCIDRs } } : {});
  if (res.kind === 'error') throw new InstallError(res.reason);
  if (res.kind === 'unchanged') return { dir, file: path, action: 'unchanged', reason: res.reason, warnings: res.warnings };
  const target = join(dir, res.file);
  if (res.file !== loaded && existsSync(target)) {
    throw new InstallError(`${loaded} would become ${res.file}, which exists already: merge them by hand`);
  }
  const diff = unifiedDiff(path, target, text, res.text);
  const report: ChainReport = { dir, file: target, action: 'changed', diff, warnings: res.warnings };
  if (res.removeFile) report.movedAside = `${join(dir, res.removeFile)}${ORIG_SUFFIX}`;
  if (dryRun) return report;
  writeAtomic(target, res.text, ownershipOf(path, 0o644));
  // The new .conflist sorts after the old .conf of the same base name: the old one goes out of the way.
  if (res.removeFile) renameSync(join(dir, res.removeFile), report.movedAside!);
  return report;
}

function describeBinary(b: BinaryReport, dryRun: boolean): string {
  const would = dryRun ? 'would ' : '';
  const lines: string[] = [];
  if (b.createdDir) lines.push(`${dryRun ? 'would create' : 'created'} ${b.path.slice(0, -PLUGIN_NAME.length - 1)}`);
  if (b.action === 'unchanged') lines.push(`${b.path} is already this executable: nothing to do`);
  else {
    const what = b.version ? ` (portmap ${b.version})` : '';
    lines.push(`${dryRun ? 'would install' : 'installed'} ${b.path}${what} from ${b.source}`);
    if (b.backup) {
      const kind = b.replaced === 'ours' ? 'the earlier version of this plugin' : 'the plugin it replaced';
      lines.push(`  ${would}${dryRun ? 'keep' : 'kept'} ${kind} as ${b.backup}`);
    }
  }
  return lines.join('\n');
}

function describeChain(c: ChainReport, dryRun: boolean): string {
  const lines: string[] = [];
  if (c.action === 'unchanged') lines.push(`${c.reason}: nothing to do`);
  else {
    const aside = c.movedAside ? ` (the old file ${dryRun ? 'would be' : 'is'} kept as ${c.movedAside})` : '';
    lines.push(`${dryRun ? 'would add' : 'added'} portmap to ${c.file}${aside}`);
    if (dryRun && c.diff) lines.push(c.diff.trimEnd());
  }
  for (const w of c.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/**
 * Installs serialise on their own lock (an abstract socket like the plugin's, so shared by every process
 * of the network namespace: the host's shell and a DaemonSet's host-network containers): two installs at
 * once could otherwise both take the reference plugin for "the plugin it replaced".
 */
export const INSTALL_LOCK_NAME = '\0cni-portmap-install.lock';

async function once(o: InstallOptions, source: RunningExecutable): Promise<{ binary: BinaryReport; chain?: ChainReport }> {
  const lock = o.dryRun ? undefined : await acquireLock('install', 120_000, INSTALL_LOCK_NAME);
  try {
    const binary = await installBinary(source, o.cniBinDir, o.dryRun);
    const chain = o.chain ? chainConflist(o.cniConfDir, o, o.dryRun) : undefined;
    return { binary, ...(chain ? { chain } : {}) };
  } finally {
    await lock?.release();
  }
}

export async function runInstall(args: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const o = parseInstallArgs(args);
  const early = usageExit('install', o, INSTALL_HELP, out, err);
  if (early !== undefined || 'error' in o) return early ?? 2;
  const source = await runningExecutable();
  if (source.kind === 'script' && !o.allowScript) {
    err(
      `portmap install: ${source.path} is the bundle run by node, which needs node >= 20 on every node's PATH as a plugin;\n` +
        '  install the self-contained executable instead (the release file portmap-<version>-linux-<arch>: run it with "install"),\n' +
        '  or pass --allow-script to install the bundle anyway\n',
    );
    return 1;
  }
  if (o.kubernetes && o.serviceCIDRs.length === 0) {
    err('portmap install: warning: --kubernetes without --service-cidr: afterServices only (see "hostPorts and Kubernetes Services" in the README)\n');
  }
  const report = async (repeat = false): Promise<number> => {
    try {
      const r = await once(o, source);
      // Repeated runs speak only when they changed something.
      if (repeat && r.binary.action === 'unchanged' && r.chain?.action !== 'changed') return 0;
      if (o.json) out(`${JSON.stringify({ dryRun: o.dryRun, ...r }, null, 2)}\n`);
      else out(`${[describeBinary(r.binary, o.dryRun), ...(r.chain ? [describeChain(r.chain, o.dryRun)] : [])].join('\n')}\n`);
      return 0;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const root = code === 'EACCES' || code === 'EPERM' ? ' (run it as root)' : '';
      const msg = e instanceof InstallError ? e.message : `${(e as Error).message}${root}`;
      if (o.json) out(`${JSON.stringify({ error: msg })}\n`);
      err(`portmap install: ${msg}\n`);
      return 1;
    }
  };
  const first = await report();
  if (o.repeatSeconds === undefined) return first;
  // Stay running: apply again every interval (each run is idempotent) until SIGTERM/SIGINT.
  return new Promise<number>((done) => {
    const timer = setInterval(() => void report(true), o.repeatSeconds! * 1000);
    const stop = () => {
      clearInterval(timer);
      done(0);
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}
