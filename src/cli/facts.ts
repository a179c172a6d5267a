/**
 * The thin gatherer: everything `list` and `doctor` read from the node (the current network namespace),
 * by running nft, iptables-*-save, ss, ip, ipset and reading /proc/sys and the CNI config directory.
 * Missing tools or unreadable state are recorded, never fatal. The reasoning lives in pure modules.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { onPath, run } from '../host/exec.js';
import type { Family } from '../net/ip.js';
import { type Flavour, type NatTable, type ServicePort, iptablesRows, parseNat } from './iptables.js';
import { type Ruleset, parseRuleset } from './nft.js';
import type { ListRow } from './rows.js';

export const TOOLS = ['nft', 'iptables', 'conntrack', 'ss', 'ip'] as const;
export type Tool = (typeof TOOLS)[number];

export interface IptSource {
  flavour: Flavour;
  family: Family;
  nat: NatTable;
}

export interface Listener {
  protocol: string;
  address: string;
  port: number;
  process?: string;
}

export interface LocalnetFact {
  podIP: string;
  dev?: string;
  value?: string;
}

export interface ConfFile {
  file: string;
  text?: string;
  error?: string;
}

export interface Facts {
  tools: Record<Tool, boolean>;
  ruleset?: Ruleset;
  iptables: IptSource[];
  /** Addresses on kube-ipvs0 (kube-proxy ipvs mode: ClusterIPs are local addresses). */
  ipvsAddresses: string[];
  /** Service ports from ipsets (ipvs mode). */
  ipsetServices: ServicePort[];
  listeners?: Listener[];
  ipForward?: string;
  ip6Forward?: string;
  routeLocalnet: LocalnetFact[];
  cniConfDir?: string;
  confFiles?: ConfFile[];
  confDirError?: string;
  /** Things that could not be read, for the report. */
  errors: string[];
}

const readText = async (path: string): Promise<string | undefined> => {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
};

const lines = (text: string | undefined): string[] => (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

/** All hostPort rows: ours and the reference's, nft and iptables (pure). */
export function allRows(facts: Pick<Facts, 'ruleset' | 'iptables'>): ListRow[] {
  return [...(facts.ruleset?.rows ?? []), ...facts.iptables.flatMap((s) => iptablesRows(s.nat, s.family, s.flavour))];
}

/** Parses `ss -Hltunp` (pure). */
export function parseSs(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of lines(text)) {
    const cols = line.split(/\s+/);
    // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
    const [netid, , , , local, , ...rest] = cols;
    if (!netid || !local) continue;
    const i = local.lastIndexOf(':');
    const port = Number(local.slice(i + 1));
    let address = local.slice(0, i).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    if (address === '*') address = '*';
    const proc = /users:\(\("([^"]+)",pid=(\d+)/.exec(rest.join(' '));
    if (!Number.isInteger(port)) continue;
    out.push({ protocol: netid, address, port, ...(proc ? { process: `${proc[1]} (pid ${proc[2]})` } : {}) });
  }
  return out;
}

/** `add KUBE-CLUSTER-IP 10.96.0.10,tcp:53` and `add KUBE-NODE-PORT-TCP 30080` (pure). */
export function parseIpsetSave(text: string): ServicePort[] {
  const out: ServicePort[] = [];
  for (const line of lines(text)) {
    const w = line.split(/\s+/);
    if (w[0] !== 'add') continue;
    const set = w[1] ?? '';
    const member = w[2] ?? '';
    const m = /^([^,]+),(tcp|udp|sctp):(\d+)$/.exec(member);
    if (set === 'KUBE-CLUSTER-IP' && m) {
      out.push({ kind: 'clusterIP', address: m[1]!, protocol: m[2]!, port: Number(m[3]), mode: 'ipvs', source: 'ipset KUBE-CLUSTER-IP', family: m[1]!.includes(':') ? 6 : 4 });
    }
    const np = /^KUBE-NODE-PORT-(TCP|UDP|SCTP)$/.exec(set);
    if (np && /^\d+$/.test(member)) {
      out.push({ kind: 'nodePort', protocol: np[1]!.toLowerCase(), port: Number(member), mode: 'ipvs', source: `ipset ${set}` });
    }
  }
  return out;
}

async function tryRun(facts: Facts, cmd: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(cmd, args, { timeoutMs: 20_000 })).stdout;
  } catch (err) {
    facts.errors.push((err as Error).message.split('\n')[0]!);
    return undefined;
  }
}

/** Reads the hostPort state (for `list`): nft ruleset and the iptables nat tables that exist. */
export async function gatherRules(facts: Facts): Promise<void> {
  if (facts.tools.nft) {
    const json = await tryRun(facts, 'nft', ['-j', 'list', 'ruleset']);
    if (json !== undefined) {
      try {
        facts.ruleset = parseRuleset(json);
      } catch (err) {
        facts.errors.push(`could not read nft -j list ruleset: ${(err as Error).message}`);
      }
    }
  }
  const jobs: Array<Promise<void>> = [];
  for (const family of [4, 6] as const) {
    const ip = family === 4 ? 'ip' : 'ip6';
    // Only read tables that exist: reading one would create it (and register NAT hooks) in this namespace.
    const legacyTables = lines(await readText(`/proc/net/${ip}_tables_names`));
    const nftTable = facts.ruleset ? facts.ruleset.tables.includes(`${ip} nat`) : true;
    const flavours: Array<[Flavour, boolean]> = [
      ['legacy', legacyTables.includes('nat')],
      ['nft', nftTable],
    ];
    for (const [flavour, present] of flavours) {
      const cmd = `${ip}tables-${flavour}-save`;
      if (!present || !onPath(cmd)) continue;
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

/** Everything doctor needs. */
export async function gatherAll(cniConfDir: string): Promise<Facts> {
  const facts = emptyFacts();
  await gatherRules(facts);
  const rows = allRows(facts);
  const jobs: Array<Promise<unknown>> = [];

  if (facts.tools.ip) {
    jobs.push(
      run('ip', ['-j', 'addr', 'show', 'dev', 'kube-ipvs0'], { timeoutMs: 10_000 }).then(
        (r) => {
          const links = JSON.parse(r.stdout) as Array<{ addr_info?: Array<{ local?: string }> }>;
          facts.ipvsAddresses = links.flatMap((l) => (l.addr_info ?? []).map((a) => a.local ?? '')).filter(Boolean);
        },
        () => undefined,
      ),
    );
  }
  if (onPath('ipset')) {
    for (const set of ['KUBE-CLUSTER-IP', 'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-UDP', 'KUBE-NODE-PORT-SCTP']) {
      jobs.push(
        run('ipset', ['list', set, '-o', 'save'], { timeoutMs: 10_000 }).then(
          (r) => facts.ipsetServices.push(...parseIpsetSave(r.stdout)),
          () => undefined,
        ),
      );
    }
  }
  if (facts.tools.ss) {
    jobs.push(tryRun(facts, 'ss', ['-Hltunp']).then((t) => t !== undefined && (facts.listeners = parseSs(t))));
  }
  jobs.push(readText('/proc/sys/net/ipv4/ip_forward').then((v) => v !== undefined && (facts.ipForward = v)));
  jobs.push(readText('/proc/sys/net/ipv6/conf/all/forwarding').then((v) => v !== undefined && (facts.ip6Forward = v)));

  const localhostPods = [...new Set(rows.filter((r) => r.family === 4 && r.localhost && (!r.hostIP || r.hostIP.startsWith('127.'))).map((r) => r.podIP))];
  for (const podIP of localhostPods) {
    jobs.push(
      (async () => {
        const fact: LocalnetFact = { podIP };
        try {
          const r = await run('ip', ['-j', 'route', 'get', podIP], { timeoutMs: 10_000 });
          const dev = (JSON.parse(r.stdout) as Array<{ dev?: string }>)[0]?.dev;
          if (dev) {
            fact.dev = dev;
            const v = await readText(`/proc/sys/net/ipv4/conf/${dev}/route_localnet`);
            if (v !== undefined) fact.value = v;
          }
        } catch {
          // no route: reported as unknown device
        }
        facts.routeLocalnet.push(fact);
      })(),
    );
  }

  facts.cniConfDir = cniConfDir;
  jobs.push(
    (async () => {
      try {
        const names = (await readdir(cniConfDir)).filter((n) => /\.(conflist|conf|json)$/.test(n)).sort();
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
      } catch (err) {
        facts.confDirError = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message;
      }
    })(),
  );
  await Promise.all(jobs);
  return facts;
}
