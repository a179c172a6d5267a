/**
 * Pure reading of `iptables-save -t nat` text: the reference plugin's hostPort chains (CNI-HOSTPORT-DNAT,
 * CNI-DN-*), kube-proxy's Service chains (KUBE-SERVICES, KUBE-NODEPORTS) and the order of the jumps in
 * PREROUTING/OUTPUT. Nothing here runs a process.
 */
import type { Family } from '../net/ip.js';
import { tokenize } from '../backends/iptables/parse.js';
import { isOwnMarker } from '../backends/iptables/render.js';
import { parseOwnerComment } from '../portmap/owner.js';
import type { ListRow } from './rows.js';

export type Flavour = 'nft' | 'legacy';

export interface IptRule {
  chain: string;
  /** Position in its chain, from 0. */
  index: number;
  args: string[];
}

export interface NatTable {
  chains: Map<string, IptRule[]>;
}

export { tokenize };

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

/** The value after an option (`-p`, `--dport`, `--comment`, ...), or undefined. Negated options are skipped. */
export function opt(rule: IptRule, ...names: string[]): string | undefined {
  const a = rule.args;
  for (let i = 0; i < a.length - 1; i++) {
    if (names.includes(a[i]!) && a[i - 1] !== '!') return a[i + 1];
  }
  return undefined;
}

export const target = (rule: IptRule): string | undefined => opt(rule, '-j', '--jump', '-g', '--goto');

const stripMask = (addr: string): string => addr.replace(/\/(32|128)$/, '');

/** `host:port`, `[v6]:port` -> address and port. */
export function splitHostPort(text: string): { addr: string; port?: number } {
  const v6 = /^\[([^\]]+)\](?::(\d+))?/.exec(text);
  if (v6) return { addr: v6[1]!, ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  const m = /^([^:]+)(?::(\d+))?/.exec(text);
  return { addr: m?.[1] ?? text, ...(m?.[2] ? { port: Number(m[2]) } : {}) };
}

/** `dnat name: "<net>" id: "<id>"` -> network and container id. */
export function parseDnatComment(comment: string | undefined): { network?: string; containerID?: string } {
  const m = /dnat name: "([^"]*)" id: "([^"]*)"/.exec(comment ?? '');
  return m ? { network: m[1]!, containerID: m[2]! } : {};
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
  comment?: string;
  network?: string;
  containerID?: string;
  /** Ours when the chain starts with our marker rule (OWN_MARKER), else the reference plugin's. */
  origin: 'portmap-ts' | 'reference';
  /** `-d <cidr> -j RETURN` rules of the chain (serviceCIDRs) */
  excludes: string[];
  /** protocol -> host ports of the entry rules */
  entryPorts: Map<string, number[]>;
  /** Whether the chain marks 127.0.0.1 for masquerade (localhost forwarding). */
  localhost: boolean;
  hasConditions: boolean;
}

/** The CNI-DN-* chains reached from CNI-HOSTPORT-DNAT, in jump order. */
export function dnChains(nat: NatTable): DnChain[] {
  const out = new Map<string, DnChain>();
  for (const r of nat.chains.get('CNI-HOSTPORT-DNAT') ?? []) {
    const chain = target(r);
    if (!chain) continue;
    const comment = opt(r, '--comment');
    const owner = parseOwnerComment(comment);
    const dn: DnChain = out.get(chain) ?? {
      chain,
      order: r.index,
      ...(comment !== undefined ? { comment } : {}),
      ...parseDnatComment(comment),
      ...(owner?.network ? { network: owner.network, containerID: owner.containerID! } : {}),
      origin: owner ? 'portmap-ts' : 'reference',
      excludes: [],
      entryPorts: new Map(),
      localhost: false,
      hasConditions: false,
    };
    const proto = opt(r, '-p', '--protocol') ?? 'all';
    const ports = [...expandPorts(opt(r, '--dports', '--destination-ports')), ...expandPorts(opt(r, '--dport', '--destination-port'))];
    dn.entryPorts.set(proto, [...(dn.entryPorts.get(proto) ?? []), ...ports]);
    const known = new Set(['-p', '--protocol', '-m', '--comment', '--dports', '--destination-ports', '--dport', '--destination-port', '-j']);
    const words = r.args.filter((w, i) => !known.has(w) && !known.has(r.args[i - 1] ?? ''));
    if (words.length > 0) dn.hasConditions = true;
    out.set(chain, dn);
  }
  for (const dn of out.values()) {
    const rules = nat.chains.get(dn.chain) ?? [];
    dn.localhost = rules.some((r) => opt(r, '-s', '--source') === '127.0.0.1/32');
    if (rules.some((r) => isOwnMarker(r.args))) dn.origin = 'portmap-ts';
    dn.excludes = rules.filter((r) => target(r) === 'RETURN' && opt(r, '-d', '--destination')).map((r) => opt(r, '-d', '--destination')!);
  }
  return [...out.values()].sort((a, b) => a.order - b.order);
}

/** Every DNAT of the CNI-DN-* chains, in the order the kernel tries them. */
export function iptablesRows(nat: NatTable, family: Family, flavour: Flavour): ListRow[] {
  const rows: ListRow[] = [];
  for (const dn of dnChains(nat)) {
    for (const r of nat.chains.get(dn.chain) ?? []) {
      if (target(r) !== 'DNAT') continue;
      const to = opt(r, '--to-destination');
      const protocol = opt(r, '-p', '--protocol');
      const hostPort = Number(opt(r, '--dport', '--destination-port'));
      if (!to || !protocol || !Number.isInteger(hostPort)) continue;
      // The entry rule must send this port here; otherwise the DNAT is dead code.
      if (!(dn.entryPorts.get(protocol) ?? []).includes(hostPort)) continue;
      const { addr, port } = splitHostPort(to);
      const d = opt(r, '-d', '--destination');
      rows.push({
        backend: 'iptables',
        origin: dn.origin,
        source: `iptables-${flavour}`,
        family,
        protocol,
        ...(d ? { hostIP: stripMask(d) } : {}),
        hostPort,
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
  return (nat.chains.get(from) ?? []).find((r) => target(r) === chainName)?.index;
}

export interface ServicePort {
  kind: 'clusterIP' | 'nodePort';
  /** ClusterIP (kind clusterIP) */
  address?: string;
  protocol: string;
  port: number;
  /** kube-proxy mode that programmed it */
  mode: 'iptables' | 'ipvs' | 'nftables';
  /** Where it was read (iptables-nft, iptables-legacy, nft ip kube-proxy, ipset) */
  source: string;
  name?: string;
  /** Address family of the table it was read from, when known */
  family?: Family;
}

/** kube-proxy iptables-mode Services: `KUBE-SERVICES -d <ip>/32 -p tcp --dport N`, `KUBE-NODEPORTS --dport N`. */
export function kubeServices(nat: NatTable, flavour: Flavour, family?: Family): ServicePort[] {
  const out: ServicePort[] = [];
  const source = `iptables-${flavour}`;
  // Chains nothing jumps to are leftovers: they translate nothing.
  if (jumpIndex(nat, 'PREROUTING', 'KUBE-SERVICES') === undefined && jumpIndex(nat, 'OUTPUT', 'KUBE-SERVICES') === undefined) return out;
  const nodePortsLive = (nat.chains.get('KUBE-SERVICES') ?? []).some((r) => target(r) === 'KUBE-NODEPORTS');
  for (const r of nat.chains.get('KUBE-SERVICES') ?? []) {
    const d = opt(r, '-d', '--destination');
    const protocol = opt(r, '-p', '--protocol');
    const port = Number(opt(r, '--dport', '--destination-port'));
    if (!d || !protocol || !Number.isInteger(port)) continue;
    const name = opt(r, '--comment');
    out.push({ kind: 'clusterIP', address: stripMask(d), protocol, port, mode: 'iptables', source, ...(name ? { name } : {}), ...(family ? { family } : {}) });
  }
  for (const r of nodePortsLive ? (nat.chains.get('KUBE-NODEPORTS') ?? []) : []) {
    const protocol = opt(r, '-p', '--protocol');
    const port = Number(opt(r, '--dport', '--destination-port'));
    if (!protocol || !Number.isInteger(port)) continue;
    const name = opt(r, '--comment');
    out.push({ kind: 'nodePort', protocol, port, mode: 'iptables', source, ...(name ? { name } : {}), ...(family ? { family } : {}) });
  }
  return out;
}

/** Whether the table holds kube-proxy rules at all. */
export const hasKubeProxy = (nat: NatTable): boolean => nat.chains.has('KUBE-SERVICES');

/** ipvs mode leaves `-m set --match-set KUBE-CLUSTER-IP` rules in KUBE-SERVICES. */
export const isIpvsMode = (nat: NatTable): boolean =>
  (nat.chains.get('KUBE-SERVICES') ?? []).some((r) => opt(r, '--match-set') === 'KUBE-CLUSTER-IP');
