/**
 * Pure reading of `nft -j list ruleset`: our table (inet cni_portmap), the reference plugin's
 * `cni_hostport` tables, kube-proxy's nftables-mode tables and every NAT base chain with its priority.
 * The nft vocabulary (listing schema, our map names, DNAT decoding) is the nftables backend's.
 */
import { FAMILY, TABLE } from '../backends/nftables/json.js';
import { type Listing as ListingDoc, type TableState, keyPrefix, parseListing, parseTable, unwrap } from '../backends/nftables/parse.js';
import {
  REFERENCE_DNAT_CHAINS,
  REFERENCE_MASQ_CHAIN,
  REFERENCE_TABLE,
  decodeDnatRule,
  forwardRows,
} from '../backends/nftables/read.js';
import { mapNames } from '../backends/nftables/render.js';
import { type Family, cidrText } from '../net/ip.js';
import type { ServicePort } from './kube-proxy.js';
import { type ListRow, OUR_TABLE } from './rows.js';

/** kube-proxy's nftables mode: tables `ip kube-proxy` and `ip6 kube-proxy`, and their Service maps. */
export const KUBE_PROXY_TABLE = 'kube-proxy';
const SERVICE_IPS = 'service-ips';
const SERVICE_NODEPORTS = 'service-nodeports';

export interface NatBaseChain {
  family: string;
  table: string;
  name: string;
  hook: string;
  prio: number;
}

export interface Ruleset {
  /** Our table, when present. */
  ours?: TableState;
  /** Priority of our prerouting chain (PRIORITY_DEFAULT, or PRIORITY_AFTER_SERVICES). */
  ourPriority?: number;
  /** Our servicecidrs sets, as "addr/len". */
  serviceCidrs: string[];
  /** Rows from our table and from the reference's cni_hostport tables. */
  rows: ListRow[];
  /** kube-proxy nftables-mode Service ports. */
  services: ServicePort[];
  natChains: NatBaseChain[];
  /** Tables present, "family name" */
  tables: string[];
}

type Listing = ListingDoc['nftables'];

interface MatchExpr {
  match?: { left?: { payload?: { field?: string } }; right?: unknown };
}

const familyOf = (nftFamily: string): Family => (nftFamily === 'ip6' ? 6 : 4);

/** Our table's rows (with localhost from the snat4 set) and servicecidrs prefixes. */
function readOurs(json: string, out: Ruleset): void {
  const ours = parseTable(json);
  out.ours = ours;
  const prio = ours.chains.get('prerouting')?.prio;
  if (prio !== undefined) out.ourPriority = prio;
  const snat4 = new Set(ours.elements.filter((e) => e.set === mapNames(4).snat).map((e) => String(e.key)));
  for (const r of forwardRows(ours)) {
    out.rows.push({ ...r, source: OUR_TABLE, localhost: r.family === 4 && snat4.has(r.podIP) });
  }
  for (const f of [4, 6] as const) {
    for (const e of ours.elements.filter((x) => x.set === mapNames(f).servicecidrs)) {
      const prefix = keyPrefix(e.key);
      if (prefix) out.serviceCidrs.push(cidrText(prefix));
    }
  }
}

/** kube-proxy's Service maps: `addr . proto . port : verdict` and `proto . port : verdict`. */
function readKubeProxyMap(map: NonNullable<Listing[number]['map']>, out: Ruleset): void {
  if (map.table !== KUBE_PROXY_TABLE || (map.name !== SERVICE_IPS && map.name !== SERVICE_NODEPORTS)) return;
  const source = `nft ${map.family} ${KUBE_PROXY_TABLE}`;
  const where = { mode: 'nftables' as const, source, family: familyOf(map.family) };
  for (const entry of map.elem ?? []) {
    const [k, verdict] = Array.isArray(entry) ? entry : [entry, undefined];
    const { key, comment } = unwrap(k);
    const parts = ((key as { concat?: unknown[] })?.concat ?? []) as unknown[];
    const name = comment ?? JSON.stringify(verdict ?? '').match(/-(\w+\/[^"]+)/)?.[1];
    const named = name ? { name } : {};
    if (map.name === SERVICE_IPS && parts.length === 3) {
      const [address, protocol, port] = parts;
      const clusterIP = { address: String(address), protocol: String(protocol), port: Number(port) };
      out.services.push({ kind: 'clusterIP', ...clusterIP, ...where, ...named });
    }
    if (map.name === SERVICE_NODEPORTS && parts.length === 2) {
      const [protocol, port] = parts;
      out.services.push({ kind: 'nodePort', protocol: String(protocol), port: Number(port), ...where, ...named });
    }
  }
}

/** The pods the reference's masquerade chain forwards 127.0.0.1 to (`ip saddr 127.0.0.1 ip daddr <pod>`). */
function referenceLocalhost(doc: Listing): Set<string> {
  const pods = new Set<string>();
  for (const { rule: r } of doc) {
    if (!r || r.table !== REFERENCE_TABLE || r.chain !== REFERENCE_MASQ_CHAIN) continue;
    const fromLocalhost = r.expr.some((x) => {
      const m = (x as MatchExpr).match;
      return m?.left?.payload?.field === 'saddr' && m.right === '127.0.0.1';
    });
    // decodeDnatRule's hostIP is the last daddr match: here the pod.
    const pod = decodeDnatRule(r.expr).hostIP;
    if (fromLocalhost && pod) pods.add(pod);
  }
  return pods;
}

/** The reference's nft backend: one rule per mapping in hostports, comment = container id. */
function readReference(doc: Listing, out: Ruleset): void {
  const localhost = referenceLocalhost(doc);
  for (const { rule: r } of doc) {
    if (!r || r.table !== REFERENCE_TABLE || (r.family !== 'ip' && r.family !== 'ip6')) continue;
    if (!REFERENCE_DNAT_CHAINS.includes(r.chain)) continue;
    const d = decodeDnatRule(r.expr);
    if (d.hostPort === undefined || d.podIP === undefined) continue;
    const family = familyOf(r.family);
    out.rows.push({
      backend: 'nftables',
      origin: 'reference',
      source: { kind: 'nft', table: REFERENCE_TABLE, family: r.family },
      family,
      protocol: d.protocol ?? '?',
      ...(d.hostIP ? { hostIP: d.hostIP } : {}),
      hostPort: d.hostPort,
      podIP: d.podIP,
      containerPort: d.containerPort ?? d.hostPort,
      ...(r.comment ? { containerID: r.comment } : {}),
      chain: r.chain,
      ...(typeof r.handle === 'number' ? { handle: r.handle } : {}),
      localhost: family === 4 && localhost.has(d.podIP),
    });
  }
}

/** Parses `nft -j list ruleset` (pure). */
export function parseRuleset(json: string): Ruleset {
  const doc = parseListing(json).nftables;
  const out: Ruleset = { serviceCidrs: [], rows: [], services: [], natChains: [], tables: [] };
  if (doc.some((o) => o.table?.family === FAMILY && o.table.name === TABLE)) readOurs(json, out);
  for (const o of doc) {
    if (o.table) out.tables.push(`${o.table.family} ${o.table.name}`);
    const c = o.chain;
    if (c && c.type === 'nat' && (c.hook === 'prerouting' || c.hook === 'output') && c.prio !== undefined) {
      out.natChains.push({ family: c.family, table: c.table, name: c.name, hook: c.hook, prio: c.prio });
    }
    if (o.map) readKubeProxyMap(o.map, out);
  }
  readReference(doc, out);
  return out;
}
