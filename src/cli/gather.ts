/**
 * The thin gatherer: everything `list` and `doctor` read from the node (the current network namespace),
 * by running nft, iptables-*-save, ss, ip, ipset and reading /proc and the CNI config directory. It only
 * reads. Missing tools or unreadable state are recorded, never fatal. The reasoning lives in pure modules.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FlavourName } from '../backends/iptables/flavour.js';
import { onPath, run } from '../host/exec.js';
import { routeDevice } from '../host/route.js';
import { readForwarding, readRouteLocalnet } from '../host/sysctl.js';
import { legacyTables } from '../host/xtables.js';
import { type Facts, type LocalnetFact, TOOLS, type Tool, allRows } from './facts.js';
import { parseNat } from './iptables.js';
import { KUBE_IPVS_SETS, parseIpsetSave } from './ipset.js';
import { parseRuleset } from './nft.js';
import type { ListRow } from './rows.js';
import { parseSs } from './ss.js';

const TIMEOUT_MS = 20_000;
const QUICK_TIMEOUT_MS = 10_000;
/** The dummy interface that holds kube-proxy's ipvs-mode ClusterIPs. */
const KUBE_IPVS_DEV = 'kube-ipvs0';

/** A tool's stdout; a failure is recorded in facts.errors. */
async function tryRun(facts: Facts, cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { timeoutMs: TIMEOUT_MS })).stdout;
  } catch (err) {
    facts.errors.push((err as Error).message.split('\n')[0]!);
    return undefined;
  }
}

/** A tool's stdout, or undefined when it fails (absent state, not an error worth a note). */
const quietRun = (cmd: string, args: string[]): Promise<string | undefined> =>
  run(cmd, args, { timeoutMs: QUICK_TIMEOUT_MS }).then((r) => r.stdout, () => undefined);

async function readNftRuleset(facts: Facts): Promise<void> {
  if (!facts.tools.nft) return;
  const json = await tryRun(facts, 'nft', ['-j', 'list', 'ruleset']);
  if (json === undefined) return;
  try {
    facts.ruleset = parseRuleset(json);
  } catch (err) {
    facts.errors.push(`could not read nft -j list ruleset: ${(err as Error).message}`);
  }
}

/** Reads the hostPort state (for `list`): nft ruleset and the iptables nat tables that exist. */
export async function gatherRules(facts: Facts): Promise<void> {
  await readNftRuleset(facts);
  const jobs: Array<Promise<void>> = [];
  for (const family of [4, 6] as const) {
    const ip = family === 4 ? 'ip' : 'ip6';
    // Only read tables that exist: reading one would create it (and register NAT hooks) in this namespace.
    const present: Record<FlavourName, boolean> = {
      legacy: legacyTables(family).includes('nat'),
      nft: facts.ruleset ? facts.ruleset.tables.includes(`${ip} nat`) : true,
    };
    for (const flavour of ['legacy', 'nft'] as const) {
      const cmd = `${ip}tables-${flavour}-save`;
      if (!present[flavour] || !onPath(cmd)) continue;
      jobs.push(
        tryRun(facts, cmd, ['-t', 'nat']).then((text) => {
          if (text !== undefined) facts.iptables.push({ flavour, family, nat: parseNat(text) });
        }),
      );
    }
  }
  await Promise.all(jobs);
  facts.iptables.sort((a, b) => a.family - b.family || a.flavour.localeCompare(b.flavour));
}

export function emptyFacts(): Facts {
  const tools = Object.fromEntries(TOOLS.map((t) => [t, onPath(t)])) as Record<Tool, boolean>;
  return { tools, iptables: [], ipvsAddresses: [], ipsetServices: [], routeLocalnet: [], errors: [] };
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

/** The files of the CNI config directory (.conflist, .conf, .json). */
const cniConfigs: Gatherer = async (facts, { cniConfDir }) => {
  facts.cniConfDir = cniConfDir;
  let names: string[];
  try {
    names = (await readdir(cniConfDir)).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
  } catch (err) {
    facts.confDirError = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message;
    return;
  }
  facts.confFiles = await Promise.all(
    names.map(async (n) => {
      const file = join(cniConfDir, n);
      try {
        return { file, text: await readFile(file, 'utf8') };
      } catch (err) {
        return { file, error: (err as Error).message };
      }
    }),
  );
};

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
