/**
 * Reading hostPort forwards out of nft JSON (pure): our table's map elements and conditional rules,
 * and DNAT rules in general (the reference plugin's `cni_hostport` tables are read with the same
 * decoder by `portmap list`).
 */
import type { Family } from '../../net/ip.js';
import { parseOwnerComment } from '../../portmap/owner.js';
import type { ForwardRow } from '../backend.js';
import type { Expr } from './json.js';
import { type TableState, elementIndex, keyPorts } from './parse.js';
import { forwardMaps } from './render.js';

/** The reference plugin's nft backend: tables `ip cni_hostport` and `ip6 cni_hostport`. */
export const REFERENCE_TABLE = 'cni_hostport';
/** Its chain with one DNAT rule per mapping, comment = container id. */
export const REFERENCE_HOSTPORTS_CHAIN = 'hostports';
/** The chains that hold its DNAT rules (hostip_hostports: mappings with a hostIP, before its v1.9). */
export const REFERENCE_DNAT_CHAINS: readonly string[] = [REFERENCE_HOSTPORTS_CHAIN, 'hostip_hostports'];
/** Its chain with the masquerade rules (`ip saddr 127.0.0.1 ip daddr <pod>`: localhost forwarding). */
export const REFERENCE_MASQ_CHAIN = 'masquerading';

/** What one DNAT rule forwards: `[ip daddr X] <proto> dport N ... dnat to A[:P]`. */
export interface DnatRule {
  hostIP?: string;
  protocol?: string;
  hostPort?: number;
  podIP?: string;
  containerPort?: number;
  /** ip or ip6, when the dnat statement names it */
  family?: Family;
}

interface MatchExpr {
  match?: { op?: string; left?: { payload?: { protocol?: string; field?: string }; meta?: { key?: string } }; right?: unknown };
}

/** Decodes the matches and the dnat statement of a rule; the last destination-address match wins. */
export function decodeDnatRule(expr: readonly Expr[]): DnatRule {
  const out: DnatRule = {};
  for (const x of expr) {
    const m = (x as MatchExpr).match;
    if (m && m.op === '==') {
      const p = m.left?.payload;
      if (p?.field === 'daddr' && typeof m.right === 'string') out.hostIP = m.right;
      if (p?.field === 'dport' && typeof m.right === 'number') {
        out.hostPort = m.right;
        if (p.protocol && p.protocol !== 'th') out.protocol = p.protocol;
      }
      const protoMatch = m.left?.meta?.key === 'l4proto' || p?.field === 'protocol' || p?.field === 'nexthdr';
      if (protoMatch && typeof m.right === 'string') out.protocol = m.right;
    }
    const dnat = (x as { dnat?: { family?: string; addr?: unknown; port?: unknown } }).dnat;
    if (dnat && typeof dnat.addr === 'string') {
      out.podIP = dnat.addr;
      if (typeof dnat.port === 'number') out.containerPort = dnat.port;
      if (dnat.family === 'ip' || dnat.family === 'ip6') out.family = dnat.family === 'ip6' ? 6 : 4;
    }
  }
  return out;
}

/** The owner fields of a row, from an element's or rule's comment. */
function ownerFields(comment: string | undefined): Partial<ForwardRow> {
  const p = parseOwnerComment(comment);
  if (!p) return {};
  return {
    ownerId: p.id,
    ...(p.network !== undefined ? { network: p.network } : {}),
    ...(p.containerID !== undefined ? { containerID: p.containerID } : {}),
    ...(p.ifname !== undefined ? { ifname: p.ifname } : {}),
  };
}

/** Every forward in our table: map elements (address and port maps joined by key), conditional rules. */
export function forwardRows(state: TableState): ForwardRow[] {
  const rows: ForwardRow[] = [];
  const find = elementIndex(state);
  for (const f of [4, 6] as const) {
    for (const [addrMap, portMap, withHostIP] of forwardMaps(f)) {
      for (const e of state.elements) {
        if (e.set !== addrMap) continue;
        const k = keyPorts(e.key);
        if (!k || (k.hostIP !== undefined) !== withHostIP) continue;
        // Without a port element (a range, or a one-port piece of one), the DNAT keeps the port.
        const port = k.first === k.last ? find(portMap, e.key) : undefined;
        rows.push({
          backend: 'nftables',
          origin: 'portmap-ts',
          family: f,
          protocol: k.protocol,
          ...(k.hostIP !== undefined ? { hostIP: k.hostIP } : {}),
          hostPort: k.first,
          ...(k.last !== k.first ? { lastHostPort: k.last } : {}),
          podIP: String(e.value),
          containerPort: port ? Number(port.value) : k.first,
          ...(e.packets !== undefined ? { connections: e.packets } : {}),
          ...ownerFields(e.comment),
        });
      }
    }
  }
  for (const r of state.rules) {
    if (r.chain !== 'conditional') continue;
    const d = decodeDnatRule(r.expr);
    if (d.podIP === undefined || d.hostPort === undefined) continue;
    rows.push({
      backend: 'nftables',
      origin: 'portmap-ts',
      family: d.family ?? 4,
      protocol: d.protocol ?? '?',
      ...(d.hostIP ? { hostIP: d.hostIP } : {}),
      hostPort: d.hostPort,
      podIP: d.podIP,
      containerPort: Number(d.containerPort),
      conditional: true,
      ...ownerFields(r.comment),
    });
  }
  return rows;
}
