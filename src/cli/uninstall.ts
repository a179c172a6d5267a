/**
 * `portmap uninstall`: back to the reference plugin with nothing lost. Under the plugin's lock (so no
 * ADD or DEL of ours runs meanwhile):
 *   1. reads our nftables table and turns every attachment in it back into a plan (uninstall-plan.ts);
 *      refuses, changing nothing, when one cannot be converted;
 *   2. re-creates them in the reference plugin's iptables layout with the iptables backend's rendering,
 *      one iptables-restore per family (idempotent: running it again converges);
 *   3. puts the plugin that our first install replaced (DIR/portmap.orig) back as DIR/portmap, atomically
 *      (or --reference FILE), and removes our binaries' backups;
 *   4. only then deletes the table inet cni_portmap.
 * The reference plugin then forwards, CHECKs and DELetes those pods: it reads the same CNI-DN chains.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { detectFlavour } from '../backends/iptables/flavour.js';
import { sameRule } from '../backends/iptables/parse.js';
import { jumpToGuard } from '../backends/iptables/render.js';
import { IptablesRunner } from '../backends/iptables/runner.js';
import { FAMILY, TABLE } from '../backends/nftables/json.js';
import { DEFAULT_CNI_CACHE_DIR, parseCacheEntry } from '../cni/cache.js';
import type { TableState } from '../backends/nftables/parse.js';
import { NftRunner } from '../backends/nftables/runner.js';
import { acquireLock, withLock } from '../host/lock.js';
import { type Cidr, type Family, addrPort, parseCidr } from '../net/ip.js';
import type { Plan } from '../portmap/plan.js';
import { planOfRecord } from '../portmap/record.js';
import { DEFAULT_DATA_DIR, readLiveRecords } from '../plugin/records.js';
import { commitTemp, fileContains, ownershipOf, stageCopy } from '../host/durable-files.js';
import { BINARY_MARKER } from './executable.js';
import { DEFAULT_CNI_BIN_DIR } from './cni-dirs.js';
import { INSTALL_LOCK_NAME, ORIG_SUFFIX, PLUGIN_NAME, PREVIOUS_SUFFIX } from './install.js';
import { chainsToRead, DEFAULT_MARK_MASQ_BIT, familyDocument, reconstruct } from './uninstall-plan.js';
import { usageExit } from './usage.js';


export const UNINSTALL_HELP = `Usage: portmap uninstall [--cni-bin-dir DIR] [--reference FILE] [--dry-run] [OPTIONS]

Goes back to the reference portmap plugin, keeping every hostPort. Run it as root in the node's
network namespace. Re-creates every hostPort forward held by this plugin's nftables table (inet
${TABLE}) in the reference plugin's iptables layout (one iptables-restore per family), puts back
DIR/portmap.orig (the plugin the first "portmap install" replaced), removes this plugin's files from
DIR, then deletes the nftables table. The reference plugin then forwards, checks and deletes those
pods. Changes nothing when a forward cannot be converted (it says which). Running it again is safe.
Avoid creating pods while it runs (it holds this plugin's lock meanwhile).

Options:
  --cni-bin-dir DIR     the CNI plugin directory (default ${DEFAULT_CNI_BIN_DIR})
  --reference FILE      install FILE as DIR/portmap when there is no DIR/portmap.orig
  --data-dir DIR        our attachment records (default /var/lib/cni/portmap): each pod's exact plan
  --cni-cache-dir DIR   the runtime's cached CNI results, for each pod's exact subnet when it has no
                        record (default ${DEFAULT_CNI_CACHE_DIR})
  --mark-masq-bit N     the conflists' markMasqBit, when not the default ${DEFAULT_MARK_MASQ_BIT}
  --dry-run             show the iptables documents and the steps, change nothing
  --json, -j            report as JSON ({"error"} when it fails)
  --help, -h            this text

Examples:
  /opt/cni/bin/portmap uninstall --dry-run
  /opt/cni/bin/portmap uninstall --reference /usr/lib/cni/portmap

Exit status:
  0  done (or nothing was left to do)
  1  refused or failed: the message says why and what was left as it was
  2  usage error (an unknown option, a missing or bad value)
`;

export interface UninstallOptions {
  cniBinDir: string;
  cniCacheDir: string;
  /** Our attachment records (dataDir): the exact plans of the attachments they describe. */
  dataDir: string;
  reference?: string;
  markMasqBit: number;
  dryRun: boolean;
  json: boolean;
  help: boolean;
}

export function parseUninstallArgs(args: readonly string[]): UninstallOptions | { error: string } {
  const o: UninstallOptions = {
    cniBinDir: DEFAULT_CNI_BIN_DIR, cniCacheDir: DEFAULT_CNI_CACHE_DIR, dataDir: DEFAULT_DATA_DIR, markMasqBit: DEFAULT_MARK_MASQ_BIT,
    dryRun: false, json: false, help: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 && a.startsWith('--') ? a.slice(eq + 1) : args[++i]);
    switch (name) {
      case '--cni-bin-dir':
      case '--cni-cache-dir':
      case '--data-dir':
      case '--reference': {
        const v = value();
        if (!v || v.includes('\0')) return { error: `${name} needs a path` };
        if (name === '--cni-bin-dir') o.cniBinDir = resolve(v);
        else if (name === '--cni-cache-dir') o.cniCacheDir = resolve(v);
        else if (name === '--data-dir') o.dataDir = resolve(v);
        else o.reference = resolve(v);
        break;
      }
      case '--mark-masq-bit': {
        const v = value();
        if (!v || !/^\d{1,2}$/.test(v) || Number(v) > 31) return { error: '--mark-masq-bit needs a bit number 0..31' };
        o.markMasqBit = Number(v);
        break;
      }
      case '--dry-run': o.dryRun = true; break;
      case '--json': case '-j': o.json = true; break;
      case '--help': case '-h': o.help = true; break;
      default: return { error: `unknown option ${JSON.stringify(a)}` };
    }
  }
  return o;
}

class UninstallError extends Error {}

/** The pod's address with its prefix as the runtime's cached result gave it (libcni's cache entry). */
export function cacheLookup(dir: string) {
  return (o: { network: string; containerID: string; ifname: string }, address: string): Cidr | undefined => {
    try {
      const text = readFileSync(join(dir, `${o.network}-${o.containerID}-${o.ifname}`), 'utf8');
      const ips = parseCacheEntry(text).result?.ips;
      for (const ip of Array.isArray(ips) ? ips : []) {
        const addr = (ip as { address?: unknown } | null)?.address;
        if (typeof addr !== 'string') continue;
        const c = parseCidr(addr);
        if (c.address === address) return c;
      }
    } catch {
      return undefined;
    }
    return undefined;
  };
}

interface Step {
  family: Family;
  document: string;
  ipt: IptablesRunner;
}

async function familySteps(plans: readonly Plan[]): Promise<Step[]> {
  if (plans.length === 0) return [];
  const fl = await detectFlavour();
  const steps: Step[] = [];
  for (const family of [4, 6] as const) {
    if (!plans.some((p) => p.families.some((f) => f.family === family))) continue;
    const ipt = IptablesRunner.of(fl, family);
    const chains = await ipt.listMany(chainsToRead(plans, family));
    const input = family === 4 ? ((await ipt.list('INPUT', 'filter')) ?? []) : [];
    const hasGuardJump = input.some((r) => sameRule(r, jumpToGuard()));
    steps.push({ family, document: familyDocument(plans, family, { chains }, hasGuardJump), ipt });
  }
  return steps;
}

interface BinaryStep {
  target: string;
  /** restore: rename portmap.orig over portmap; copy: install --reference; none: already not ours. */
  action: 'restore' | 'copy' | 'none';
  from?: string;
  remove: string[];
}

function binaryStep(o: UninstallOptions): BinaryStep {
  const target = join(o.cniBinDir, PLUGIN_NAME);
  const orig = target + ORIG_SUFFIX;
  const previous = target + PREVIOUS_SUFFIX;
  const remove = existsSync(previous) && fileContains(previous, BINARY_MARKER) ? [previous] : [];
  if (existsSync(orig)) return { target, action: 'restore', from: orig, remove };
  if (o.reference) {
    if (!existsSync(o.reference)) throw new UninstallError(`--reference ${o.reference} does not exist`);
    if (fileContains(o.reference, BINARY_MARKER)) throw new UninstallError(`--reference ${o.reference} is this plugin, not the reference one`);
    return { target, action: 'copy', from: o.reference, remove };
  }
  if (existsSync(target) && !fileContains(target, BINARY_MARKER)) return { target, action: 'none', remove };
  throw new UninstallError(
    `there is no ${orig} (the plugin our install replaced) to put back: pass --reference FILE ` +
      '(e.g. /usr/lib/cni/portmap from Debian\'s containernetworking-plugins, or the portmap of the CNI plugins release)',
  );
}

async function swapBinary(step: BinaryStep): Promise<void> {
  if (step.action === 'copy') {
    const tmp = stageCopy(step.from!, step.target, { ...ownershipOf(step.target, 0o755), mode: 0o755 });
    commitTemp(tmp, step.target);
  } else if (step.action === 'restore') {
    // A rename within the directory: a runtime exec'ing portmap runs ours or the restored one.
    commitTemp(step.from!, step.target);
  }
  for (const f of step.remove) rmSync(f, { force: true });
}

export interface UninstallReport {
  dryRun: boolean;
  attachments: Array<{
    network: string;
    containerID: string;
    ifname: string;
    forwards: Array<{ family: Family; protocol: string; hostIP?: string; hostPort: number; containerPort: number; pod: string }>;
  }>;
  /** One iptables-restore per family (the document itself with --dry-run). */
  iptables: Array<{ family: Family; flavour: string; restore: string; document?: string }>;
  binary: { path: string; action: BinaryStep['action']; from?: string; remove: string[] };
  /** "absent", or the table that was (or would be) deleted. */
  table: string;
}

/** The steps, in order; throws (having changed nothing of that step and after) when one fails. */
async function uninstall(o: UninstallOptions): Promise<UninstallReport> {
  const binary = binaryStep(o);
  const nft = new NftRunner();
  const table: TableState | undefined = await nft.readTable();
  const podCidr = cacheLookup(o.cniCacheDir);
  // Live records give each attachment's exact plan; the table is read only for attachments without one.
  const recorded = new Map(readLiveRecords(o.dataDir).map((r) => {
    const plan = planOfRecord(r);
    return [plan.owner.id, plan] as const;
  }));
  const known = (id: string) => recorded.has(id);
  const fromTable = table === undefined ? { plans: [], problems: [] } : reconstruct(table, { markMasqBit: o.markMasqBit, podCidr, known });
  const plans = [...recorded.values(), ...fromTable.plans];
  const problems = [
    ...[...recorded.values()].filter((p) => p.families.some((f) => f.conditions)).map((p) =>
      `${p.owner.network}/${p.owner.containerID}/${p.owner.ifname} has forwards with conditionsV4/conditionsV6 (nftables syntax): ` +
      'the reference plugin takes iptables conditions; delete that pod, or its conditions, first'),
    ...fromTable.problems,
  ];
  if (problems.length > 0) {
    throw new UninstallError(`nothing was changed: ${problems.length} forward(s) cannot be converted:\n  ${problems.join('\n  ')}`);
  }
  const steps = await familySteps(plans);
  if (!o.dryRun) {
    for (const s of steps) {
      try {
        await s.ipt.restore(s.document);
      } catch (e) {
        const what = `${s.ipt.restoreBin} failed (IPv${s.family}); the nftables table and the binary were left as they were`;
        throw new UninstallError(`${what}: ${(e as Error).message}`);
      }
    }
    await swapBinary(binary);
    if (table !== undefined) await nft.apply([{ delete: { table: { family: FAMILY, name: TABLE } } }]);
  }
  return {
    dryRun: o.dryRun,
    attachments: plans.map((p) => ({
      network: p.owner.network,
      containerID: p.owner.containerID,
      ifname: p.owner.ifname,
      forwards: p.families.flatMap((f) => f.forwards.map((x) => ({ family: f.family, ...x, pod: f.pod.address }))),
    })),
    iptables: steps.map((s) => ({
      family: s.family, flavour: s.ipt.flavour, restore: s.ipt.restoreBin, ...(o.dryRun ? { document: s.document } : {}),
    })),
    binary: { path: binary.target, action: binary.action, ...(binary.from ? { from: binary.from } : {}), remove: binary.remove },
    table: table === undefined ? 'absent' : `${FAMILY} ${TABLE}`,
  };
}

/** The human report (pure). */
export function formatUninstall(r: UninstallReport): string {
  const did = (would: string, done: string) => (r.dryRun ? `would ${would}` : done);
  const count = r.attachments.reduce((n, a) => n + a.forwards.length, 0);
  const lines = [`${r.attachments.length} attachment(s) with ${count} forward(s) in nft ${FAMILY} ${TABLE}`];
  for (const a of r.attachments) {
    const forwards = a.forwards.map((f) => `${f.protocol} ${f.hostIP ?? '*'}:${f.hostPort} -> ${addrPort(f.pod, f.containerPort)}`);
    lines.push(`  ${a.network}/${a.containerID}/${a.ifname}: ${forwards.join(', ')}`);
  }
  for (const s of r.iptables) {
    lines.push(`${did('write', 'wrote')} them to the IPv${s.family} iptables (${s.restore} --noflush)`);
    if (s.document) lines.push(s.document.trimEnd());
  }
  const b = r.binary;
  if (b.action === 'restore') lines.push(`${did('put', 'put')} ${b.from} back as ${b.path}`);
  if (b.action === 'copy') lines.push(`${did('install', 'installed')} ${b.from} as ${b.path}`);
  if (b.action === 'none') lines.push(`${b.path} is not this plugin already: left as it is`);
  for (const f of b.remove) lines.push(`${did('remove', 'removed')} ${f}`);
  if (r.table === 'absent') lines.push(`no nftables table ${FAMILY} ${TABLE} here (nothing to convert)`);
  else lines.push(`${did('delete', 'deleted')} the nftables table ${FAMILY} ${TABLE}`);
  return `${lines.join('\n')}\n`;
}

export async function runUninstall(args: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const o = parseUninstallArgs(args);
  const early = usageExit('uninstall', o, UNINSTALL_HELP, out, err);
  if (early !== undefined || 'error' in o) return early ?? 2;
  // The install lock first (no install swaps the binary meanwhile), then the plugin's (no ADD or DEL of ours).
  const installLock = o.dryRun ? undefined : await acquireLock('uninstall', 120_000, INSTALL_LOCK_NAME);
  try {
    const report = await withLock('uninstall', () => uninstall(o));
    out(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatUninstall(report));
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    if (o.json) out(`${JSON.stringify({ error: msg })}\n`);
    err(`portmap uninstall: ${msg}\n`);
    return 1;
  } finally {
    await installLock?.release();
  }
}
