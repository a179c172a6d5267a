/**
 * The thin gatherer: everything `list` and `doctor` read from the node (the current network namespace),
 * by running nft, iptables-*-save, ss, ip, ipset and reading /proc and the CNI config directory. It only
 * reads. Missing tools or unreadable state are recorded, never fatal. The reasoning lives in pure modules.
 */
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlavourName } from '../backends/iptables/flavour.js';
import { CommandError, SBIN_DIRS, locate, onPath, run } from '../host/exec.js';
import { routeDevice } from '../host/route.js';
import { readForwarding, readRouteLocalnet } from '../host/sysctl.js';
import { LEGACY_TABLES_FILE } from '../host/xtables.js';
import type { Family } from '../net/ip.js';
import { isPermissionText } from './completeness.js';
import { confFiles } from './conflist-chain.js';
import { type Facts, type LocalnetFact, OTHER_TOOLS, type Privilege, type ReadFailure, TOOLS, type Tool, allRows } from './facts.js';
import { parseNat } from './iptables.js';
import { KUBE_IPVS_SETS, parseIpsetSave } from './ipset.js';
import { parseRuleset } from './nft.js';
import type { ListRow } from './rows.js';
import { parseSs } from './ss.js';

const TIMEOUT_MS = 20_000;
const QUICK_TIMEOUT_MS = 10_000;
/** The dummy interface that holds kube-proxy's ipvs-mode ClusterIPs. */
const KUBE_IPVS_DEV = 'kube-ipvs0';

const firstLine = (err: unknown): string => ((err as Error).message ?? String(err)).split('\n')[0]!;

/** Whether an error (a command's, or the file system's) is for lack of privileges. */
const denied = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return true;
  return isPermissionText(err instanceof CommandError ? `${err.stderr}\n${err.message}` : firstLine(err));
};

/** A command's failure without the command line (ReadFailure.source has it); other errors' first line. */
function errorText(err: unknown): string {
  if (!(err instanceof CommandError) || err.kind !== 'failed' || err.code === null) return firstLine(err);
  const said = err.stderr.split('\n').map((l) => l.trim()).find(Boolean);
  return `exit ${err.code}: ${said ?? 'no error output'}`;
}

/** A failure to read something list or doctor needs (see ReadFailure). */
export const failure = (what: string, source: string, err: unknown, rules: boolean): ReadFailure =>
  ({ what, source, error: errorText(err), permission: denied(err), rules });

/** A tool's stdout; a failure is recorded in facts.errors (a note: nothing depends on it). */
async function tryRun(facts: Facts, cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { timeoutMs: TIMEOUT_MS })).stdout;
  } catch (err) {
    facts.errors.push(firstLine(err));
    return undefined;
  }
}

/** A tool's stdout; a failure makes the read incomplete (facts.unreadable). */
async function mustRun(facts: Facts, what: string, cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { timeoutMs: TIMEOUT_MS })).stdout;
  } catch (err) {
    facts.unreadable.push(failure(what, [cmd, ...args].join(' '), err, true));
    return undefined;
  }
}

/** A tool's stdout, or undefined when it fails (absent state, not an error worth a note). */
const quietRun = (cmd: string, args: string[]): Promise<string | undefined> =>
  run(cmd, args, { timeoutMs: QUICK_TIMEOUT_MS }).then((r) => r.stdout, () => undefined);

const NFT_RULESET = 'nft ruleset';

async function readNftRuleset(facts: Facts): Promise<void> {
  if (!facts.tools.nft) return;
  const json = await mustRun(facts, NFT_RULESET, 'nft', ['-j', 'list', 'ruleset']);
  if (json === undefined) return;
  try {
    facts.ruleset = parseRuleset(json);
    facts.rulesRead++;
  } catch (err) {
    facts.unreadable.push(failure(NFT_RULESET, 'nft -j list ruleset', new Error(`not nft's JSON: ${firstLine(err)}`), true));
  }
}

/**
 * Whether a legacy nat table exists (/proc/net/ip_tables_names): true, false, or the error when that
 * file exists but cannot be read (it is root's only).
 */
function legacyNat(family: Family): boolean | Error {
  try {
    return readFileSync(LEGACY_TABLES_FILE[family], 'utf8').split('\n').some((l) => l.trim() === 'nat');
  } catch (err) {
    // No file: the x_tables module is not loaded, so there is no legacy table.
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? false : (err as Error);
  }
}

/** Reads the hostPort state (for `list`): nft ruleset and the iptables nat tables that exist. */
export async function gatherRules(facts: Facts): Promise<void> {
  if (!facts.tools.nft && !onPath('iptables-nft-save') && !onPath('iptables-legacy-save')) {
    const where = `not on PATH, nor in ${SBIN_DIRS.join(', ')}`;
    facts.unreadable.push({
      what: 'hostPort rules', source: 'nft, iptables-nft-save, iptables-legacy-save', rules: true, permission: false,
      error: `neither nft nor iptables is installed (${where}): apt-get install nftables iptables`,
    });
  }
  await readNftRuleset(facts);
  const jobs: Array<Promise<void>> = [];
  for (const family of [4, 6] as const) {
    const ip = family === 4 ? 'ip' : 'ip6';
    const legacy = legacyNat(family);
    if (legacy instanceof Error) {
      facts.unreadable.push(failure(`iptables-legacy nat table (IPv${family})`, LEGACY_TABLES_FILE[family], legacy, true));
    }
    // Only read tables that exist: reading one would create it (and register NAT hooks) in this namespace.
    const present: Record<FlavourName, boolean> = {
      legacy: legacy === true,
      nft: facts.ruleset ? facts.ruleset.tables.includes(`${ip} nat`) : true,
    };
    for (const flavour of ['legacy', 'nft'] as const) {
      const cmd = `${ip}tables-${flavour}-save`;
      const what = `iptables-${flavour} nat table (IPv${family})`;
      if (!present[flavour]) continue;
      if (!onPath(cmd)) {
        // The table exists (the kernel or the nft ruleset says so) but nothing here can list it.
        if (flavour === 'legacy' || facts.ruleset) {
          facts.unreadable.push({ what, source: cmd, rules: true, permission: false, error: `the table exists, but ${cmd} is not installed (apt-get install iptables)` });
        }
        continue;
      }
      jobs.push(
        mustRun(facts, what, cmd, ['-t', 'nat']).then((text) => {
          if (text === undefined) return;
          facts.iptables.push({ flavour, family, nat: parseNat(text) });
          facts.rulesRead++;
        }),
      );
    }
  }
  await Promise.all(jobs);
  facts.iptables.sort((a, b) => a.family - b.family || a.flavour.localeCompare(b.flavour));
  facts.unreadable.sort((a, b) => a.what.localeCompare(b.what));
}

/** The effective capabilities' CAP_NET_ADMIN (bit 12) from /proc/self/status; undefined when unknown. */
function netAdmin(): boolean | undefined {
  try {
    const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    return hex === undefined ? undefined : (BigInt(`0x${hex}`) & (1n << 12n)) !== 0n;
  } catch {
    return undefined;
  }
}

export function privilege(): Privilege | undefined {
  if (typeof process.getuid !== 'function') return undefined;
  const cap = netAdmin();
  return { uid: process.getuid(), ...(cap !== undefined ? { netAdmin: cap } : {}) };
}

export function emptyFacts(): Facts {
  const path = process.env.PATH ?? '';
  const offPath: Record<string, string> = {};
  const tools = Object.fromEntries(TOOLS.map((t) => [t, false])) as Record<Tool, boolean>;
  for (const t of [...TOOLS, ...OTHER_TOOLS]) {
    const found = locate(t, path);
    if (found && !found.onPath) offPath[t] = found.file;
    if ((TOOLS as readonly string[]).includes(t)) tools[t as Tool] = found !== undefined;
  }
  const who = privilege();
  return {
    tools, iptables: [], ipvsAddresses: [], ipsetServices: [], routeLocalnet: [], errors: [], unreadable: [], rulesRead: 0,
    offPath, path, ...(who ? { privilege: who } : {}),
  };
}

/** What a doctor gatherer starts from: the rules already read, and the options. */
export interface GatherInput {
  rows: readonly ListRow[];
  cniConfDir: string;
}

/** One reading step of doctor: fills its part of the facts and never throws. */
export type Gatherer = (facts: Facts, input: GatherInput) => Promise<void>;

const ipvsAddresses: Gatherer = async (facts) => {
  if (!facts.tools.ip) return;
  const text = await quietRun('ip', ['-j', 'addr', 'show', 'dev', KUBE_IPVS_DEV]);
  if (text === undefined) return;
  try {
    const links = JSON.parse(text) as Array<{ addr_info?: Array<{ local?: string }> }>;
    facts.ipvsAddresses = links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? '')).filter(Boolean);
  } catch {
    // not ip's JSON: no addresses known
  }
};

const ipsetServices: Gatherer = async (facts) => {
  if (!onPath('ipset')) return;
  await Promise.all(
    KUBE_IPVS_SETS.map(async (set) => {
      const text = await quietRun('ipset', ['list', set, '-o', 'save']);
      if (text !== undefined) facts.ipsetServices.push(...parseIpsetSave(text));
    }),
  );
};

const listeners: Gatherer = async (facts) => {
  if (!facts.tools.ss) return;
  const text = await tryRun(facts, 'ss', ['-Hltunp']);
  if (text !== undefined) facts.listeners = parseSs(text);
};

const forwarding: Gatherer = async (facts) => {
  const [v4, v6] = [readForwarding(4), readForwarding(6)];
  if (v4 !== undefined) facts.ipForward = v4;
  if (v6 !== undefined) facts.ip6Forward = v6;
};

/** route_localnet where pods with IPv4 localhost hostPorts are routed. */
const routeLocalnet: Gatherer = async (facts, { rows }) => {
  const viaLocalhost = (r: ListRow) => r.family === 4 && r.localhost && (!r.hostIP || r.hostIP.startsWith('127.'));
  const pods = [...new Set(rows.filter(viaLocalhost).map((r) => r.podIP))];
  const read = async (podIP: string): Promise<LocalnetFact> => {
    const dev = await routeDevice(podIP).catch(() => undefined);
    if (!dev) return { podIP };
    const on = await readRouteLocalnet(dev).catch(() => undefined);
    return { podIP, dev, ...(on !== undefined ? { on } : {}) };
  };
  facts.routeLocalnet.push(...(await Promise.all(pods.map(read))));
};

/** The files of a CNI config directory a runtime considers (.conf, .conflist, .json), in its order. */
export async function readConfDir(facts: Pick<Facts, 'cniConfDir' | 'confFiles' | 'confDirError' | 'unreadable'>, cniConfDir: string): Promise<void> {
  facts.cniConfDir = cniConfDir;
  let names: string[];
  try {
    names = confFiles(await readdir(cniConfDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') facts.confDirError = 'missing';
    else facts.unreadable.push(failure('the CNI configuration directory', cniConfDir, err, false));
    return;
  }
  facts.confFiles = await Promise.all(
    names.map(async (n) => {
      const file = join(cniConfDir, n);
      try {
        return { file, text: await readFile(file, 'utf8') };
      } catch (err) {
        // A directory or a dangling link is no configuration; anything else is a file doctor could not check.
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EISDIR' && code !== 'ENOENT') facts.unreadable.push(failure('a CNI configuration file', file, err, false));
        return { file, error: (err as Error).message };
      }
    }),
  );
}

const cniConfigs: Gatherer = (facts, { cniConfDir }) => readConfDir(facts, cniConfDir);

/** doctor's reading steps after the rules, run in parallel; a new fact is one more entry. */
export const GATHERERS: readonly Gatherer[] = [
  ipvsAddresses,
  ipsetServices,
  listeners,
  forwarding,
  routeLocalnet,
  cniConfigs,
];

/** Everything doctor needs. */
export async function gatherAll(cniConfDir: string, gatherers: readonly Gatherer[] = GATHERERS): Promise<Facts> {
  const facts = emptyFacts();
  await gatherRules(facts);
  const input: GatherInput = { rows: allRows(facts), cniConfDir };
  await Promise.all(gatherers.map((g) => g(facts, input)));
  return facts;
}
