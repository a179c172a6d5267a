/**
 * Pure reading of `iptables-save -t nat` text: the hostPort chains (CNI-HOSTPORT-DNAT, CNI-DN-*) of
 * the reference plugin and of our iptables backend, and the order of the jumps in PREROUTING/OUTPUT
 * (kube-proxy's chains: kube-proxy.ts). Nothing here runs a process.
 * The rule vocabulary (tokens, options, targets, comments, chain names) is the iptables backend's.
 */
import type { FlavourName } from '../backends/iptables/flavour.js';
import { matchValue, tokenize } from '../backends/iptables/parse.js';
import {
  type Args,
  TOP_DNAT,
  isOwnMarker,
  parseEntryComment,
  targetOf,
} from '../backends/iptables/render.js';
import type { Family } from '../net/ip.js';
import type { ListRow } from './rows.js';

export interface IptRule {
  chain: string;
  /** Position in its chain, from 0. */
  index: number;
  args: Args;
}

export interface NatTable {
  chains: Map<string, IptRule[]>;
}

/** Parses the `*nat` section of iptables-save output (other tables are ignored). */
export function parseNat(text: string): NatTable {
  const chains = new Map<string, IptRule[]>();
  let inNat = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inNat = line === '*nat';
      continue;
    }
    if (!inNat) continue;
    if (line.startsWith(':')) {
      const name = line.slice(1).split(' ')[0]!;
      if (!chains.has(name)) chains.set(name, []);
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    const words = tokenize(line);
    const chain = words[1]!;
    const list = chains.get(chain) ?? [];
    list.push({ chain, index: list.length, args: words.slice(2) });
    chains.set(chain, list);
  }
  return { chains };
}

/** The rules of a chain, in order (none when the chain does not exist). */
export const rulesOf = (nat: NatTable, chain: string): IptRule[] => nat.chains.get(chain) ?? [];
/** An address without its host prefix length (`/32`, `/128`), as iptables-save prints single addresses. */
export const stripMask = (addr: string): string => addr.replace(/\/(32|128)$/, '');
/** A number option (`--dport`), or undefined when absent or not a number. */
export const numberOf = (r: IptRule, option: string): number | undefined => {
  const n = Number(matchValue(r.args, option) ?? Number.NaN);
  return Number.isInteger(n) ? n : undefined;
};

/** `host:port`, `[v6]:port` -> address and port. */
export function splitHostPort(text: string): { addr: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?/.exec(text);
  if (v6) return { addr: v6[1]!, ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const m = /^([^:]+)(?::(\d+))?/.exec(text);
  return { addr: m?.[1] ?? text, ...(m?.[2] ? { port: Number(m[2]) } : {}) };
}

/** Expands `8080,8081,9000:9002` (multiport) into numbers. */
export function expandPorts(list: string | undefined): number[] {
  if (!list) return [];
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split(':').map(Number);
    if (a === undefined || Number.isNaN(a)) return [];
    if (b === undefined || Number.isNaN(b)) return [a];
    return Array.from({ length: Math.max(0, b - a + 1) }, (_, i) => a + i);
  });
}

export interface DnChain {
  /** The CNI-DN-* chain */
  chain: string;
  /** Position of the first jump to it in CNI-HOSTPORT-DNAT (earlier wins). */
  order: number;
  network?: string;
  containerID?: string;
  /** Ours when the chain holds our marker rule (OWN_MARKER), else the reference plugin's. */
  origin: 'portmap-ts' | 'reference';
  /** `-d <cidr> -j RETURN` rules of the chain (serviceCIDRs) */
  excludes: string[];
  /** protocol -> host ports of the entry rules */
  entryPorts: Map<string, number[]>;
  /** Whether the chain marks 127.0.0.1 for masquerade (localhost forwarding). */
  localhost: boolean;
  hasConditions: boolean;
}

/** The options an entry rule of the layout has; any other word is a condition (conditionsV4/V6). */
const ENTRY_OPTIONS = new Set([
  '-p', '--protocol', '-m', '--comment', '--dports', '--destination-ports', '--dport', '--destination-port', '-j',
]);

/** The network and container of an entry rule's comment (none when it was cut short). */
function ownerOf(comment: string | undefined): Pick<DnChain, 'network' | 'containerID'> {
  const entry = parseEntryComment(comment);
  return entry && !entry.truncated ? { network: entry.network, containerID: entry.containerID } : {};
}

/** The CNI-DN-* chains reached from CNI-HOSTPORT-DNAT, in jump order. */
export function dnChains(nat: NatTable): DnChain[] {
  const out = new Map<string, DnChain>();
  for (const r of rulesOf(nat, TOP_DNAT)) {
    const chain = targetOf(r.args);
    if (!chain) continue;
    const dn: DnChain = out.get(chain) ?? {
      chain,
      order: r.index,
      ...ownerOf(matchValue(r.args, '--comment')),
      origin: 'reference',
      excludes: [],
      entryPorts: new Map(),
      localhost: false,
      hasConditions: false,
    };
    const proto = matchValue(r.args, '-p') ?? 'all';
    const ports = [...expandPorts(matchValue(r.args, '--dports')), ...expandPorts(matchValue(r.args, '--dport'))];
    dn.entryPorts.set(proto, [...(dn.entryPorts.get(proto) ?? []), ...ports]);
    const words = r.args.filter((w, i) => !ENTRY_OPTIONS.has(w) && !ENTRY_OPTIONS.has(r.args[i - 1] ?? ''));
    if (words.length > 0) dn.hasConditions = true;
    out.set(chain, dn);
  }
  for (const dn of out.values()) {
    const rules = rulesOf(nat, dn.chain);
    dn.localhost = rules.some((r) => matchValue(r.args, '-s') === '127.0.0.1/32');
    if (rules.some((r) => isOwnMarker(r.args))) dn.origin = 'portmap-ts';
    dn.excludes = rules.flatMap((r) => {
      const d = targetOf(r.args) === 'RETURN' ? matchValue(r.args, '-d') : undefined;
      return d ? [d] : [];
    });
  }
  return [...out.values()].sort((a, b) => a.order - b.order);
}

/** Every DNAT of the CNI-DN-* chains, in the order the kernel tries them. */
export function iptablesRows(nat: NatTable, family: Family, flavour: FlavourName): ListRow[] {
  const rows: ListRow[] = [];
  for (const dn of dnChains(nat)) {
    for (const r of rulesOf(nat, dn.chain)) {
      if (targetOf(r.args) !== 'DNAT') continue;
      const to = matchValue(r.args, '--to-destination');
      const protocol = matchValue(r.args, '-p');
      // One port, or a range `a:b` (DNAT to the address alone: the ports stay).
      const [hostPort, lastHostPort] = (matchValue(r.args, '--dport') ?? '').split(':').map(Number) as [number, number | undefined];
      if (!to || !protocol || !Number.isInteger(hostPort)) continue;
      // The entry rule must send this port here; otherwise the DNAT is dead code.
      if (!(dn.entryPorts.get(protocol) ?? []).includes(hostPort)) continue;
      const { addr, port } = splitHostPort(to);
      const d = matchValue(r.args, '-d');
      rows.push({
        backend: 'iptables',
        origin: dn.origin,
        source: { kind: 'iptables', flavour },
        family,
        protocol,
        ...(d ? { hostIP: stripMask(d) } : {}),
        hostPort,
        ...(lastHostPort !== undefined && Number.isInteger(lastHostPort) && lastHostPort > hostPort ? { lastHostPort } : {}),
        podIP: addr,
        containerPort: port ?? hostPort,
        ...(dn.network !== undefined ? { network: dn.network } : {}),
        ...(dn.containerID !== undefined ? { containerID: dn.containerID } : {}),
        ...(dn.hasConditions ? { conditional: true } : {}),
        chain: dn.chain,
        localhost: dn.localhost,
        ...(dn.excludes.length > 0 ? { excludes: dn.excludes } : {}),
      });
    }
  }
  return rows;
}

/** Position of the first jump to `chainName` in `from` (e.g. PREROUTING), or undefined. */
export function jumpIndex(nat: NatTable, from: string, chainName: string): number | undefined {
  return rulesOf(nat, from).find((r) => targetOf(r.args) === chainName)?.index;
}
