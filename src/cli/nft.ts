/**
 * Pure reading of `nft -j list ruleset`: our table (inet cni_portmap), the reference plugin's
 * `cni_hostport` tables, kube-proxy's nftables-mode tables and every NAT base chain with its priority.
 */
import { decodeDnatRule, forwardRows } from '../backends/nftables/read.js';
import { FAMILY, TABLE } from '../backends/nftables/json.js';
import { type TableState, nftListing, parseTable, unwrap } from '../backends/nftables/parse.js';
import { mapNames } from '../backends/nftables/render.js';
import type { Family } from '../net/ip.js';
import type { ServicePort } from './iptables.js';
import type { ListRow } from './rows.js';

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
  /** Priority of our prerouting chain (-100: afterServices off, -90: on). */
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

interface MatchExpr {
  match?: { op?: string; left?: { payload?: { protocol?: string; field?: string }; meta?: { key?: string } }; right?: unknown };
}

function prefixText(key: unknown): string | undefined {
  if (typeof key === 'string') return key.includes('/') ? key : `${key}/${key.includes(':') ? 128 : 32}`;
  const p = (key as { prefix?: { addr?: string; len?: number } })?.prefix;
  if (p?.addr !== undefined && p.len !== undefined) return `${p.addr}/${p.len}`;
  return undefined;
}


/** Parses `nft -j list ruleset` (pure). */
export function parseRuleset(json: string): Ruleset {
  const doc = nftListing.parse(JSON.parse(json));
  const out: Ruleset = { serviceCidrs: [], rows: [], services: [], natChains: [], tables: [] };
  const hasOurs = doc.nftables.some((o) => o.table?.family === FAMILY && o.table.name === TABLE);
  if (hasOurs) {
    out.ours = parseTable(json);
    out.ourPriority = out.ours.chains.get('prerouting')?.prio;
    const snat4 = new Set(out.ours.elements.filter((e) => e.set === mapNames(4).snat).map((e) => String(e.key)));
    out.rows.push(
      ...forwardRows(out.ours).map((r) => ({ ...r, source: `nft ${FAMILY} ${TABLE}`, localhost: r.family === 4 && snat4.has(r.podIP) })),
    );
    for (const f of [4, 6] as const) {
      for (const e of out.ours.elements.filter((x) => x.set === mapNames(f).servicecidrs)) {
        const t = prefixText(e.key);
        if (t) out.serviceCidrs.push(t);
      }
    }
  }
  const refLocalhost = new Set<string>();
  for (const o of doc.nftables) {
    if (o.table) out.tables.push(`${o.table.family} ${o.table.name}`);
    const c = o.chain;
    if (c && c.type === 'nat' && (c.hook === 'prerouting' || c.hook === 'output') && c.prio !== undefined) {
      out.natChains.push({ family: c.family, table: c.table, name: c.name, hook: c.hook, prio: c.prio });
    }
    const r = o.rule;
    if (r && r.table === 'cni_hostport' && r.chain === 'masquerading') {
      const rr = decodeDnatRule(r.expr ?? []);
      const saddr = (r.expr ?? []).some((x) => {
        const m = (x as MatchExpr).match;
        return m?.left?.payload?.field === 'saddr' && m.right === '127.0.0.1';
      });
      if (saddr && rr.hostIP) refLocalhost.add(rr.hostIP);
    }
    const m = o.map;
    if (m && m.table === 'kube-proxy' && (m.name === 'service-ips' || m.name === 'service-nodeports')) {
      for (const entry of m.elem ?? []) {
        const [k, verdict] = Array.isArray(entry) ? entry : [entry, undefined];
        const { key: val, comment } = unwrap(k);
        const parts = ((val as { concat?: unknown[] })?.concat ?? []) as unknown[];
        const name = comment ?? (JSON.stringify(verdict ?? '').match(/-(\w+\/[^"]+)/)?.[1]);
        if (m.name === 'service-ips' && parts.length === 3) {
          out.services.push({ kind: 'clusterIP', address: String(parts[0]), protocol: String(parts[1]), port: Number(parts[2]), mode: 'nftables', source: `nft ${m.family} kube-proxy`, family: m.family === 'ip6' ? 6 : 4, ...(name ? { name } : {}) });
        }
        if (m.name === 'service-nodeports' && parts.length === 2) {
          out.services.push({ kind: 'nodePort', protocol: String(parts[0]), port: Number(parts[1]), mode: 'nftables', source: `nft ${m.family} kube-proxy`, family: m.family === 'ip6' ? 6 : 4, ...(name ? { name } : {}) });
        }
      }
    }
  }
  // The reference's nft backend: one rule per mapping in hostports (hostip_hostports before v1.9), comment = container id.
  for (const o of doc.nftables) {
    const r = o.rule;
    if (!r || r.table !== 'cni_hostport' || (r.family !== 'ip' && r.family !== 'ip6')) continue;
    if (r.chain !== 'hostports' && r.chain !== 'hostip_hostports') continue;
    const rr = decodeDnatRule(r.expr ?? []);
    if (rr.hostPort === undefined || rr.podIP === undefined) continue;
    const family: Family = r.family === 'ip6' ? 6 : 4;
    out.rows.push({
      backend: 'nftables',
      origin: 'reference',
      source: `nft ${r.family} cni_hostport`,
      family,
      protocol: rr.protocol ?? '?',
      ...(rr.hostIP ? { hostIP: rr.hostIP } : {}),
      hostPort: rr.hostPort,
      podIP: rr.podIP,
      containerPort: rr.containerPort ?? rr.hostPort,
      ...(r.comment ? { containerID: r.comment } : {}),
      localhost: family === 4 && refLocalhost.has(rr.podIP),
    });
  }
  return out;
}
