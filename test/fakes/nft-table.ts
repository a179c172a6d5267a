/**
 * `nft -j list table inet cni_portmap` output for unit tests, in the shape nft prints: built from
 * elements and chains, so that fixtures go through the real parser (parseTable).
 */
import type { Element } from '../../src/backends/nftables/json.js';
import { FAMILY, TABLE } from '../../src/backends/nftables/json.js';
import { type TableState, parseTable } from '../../src/backends/nftables/parse.js';
import { FORWARD_MAP_SHAPE, baseChains, forwardAddrMaps, priorityFor, staticRules } from '../../src/backends/nftables/render.js';

export interface ListingParts {
  elements?: readonly Element[];
  /** Base chains at this priority (default: dstnat, as without afterServices); null: none. */
  priority?: number | null;
  /** Static rules present (default true). */
  rules?: boolean;
  /** Address maps declared as before port ranges: plain hash maps, no counters (default false). */
  oldShape?: boolean;
  /** Extra rules: chain, handle, comment, expr. */
  extraRules?: Array<{ chain: string; handle: number; comment?: string; expr: unknown[] }>;
}

export function listing(parts: ListingParts = {}): string {
  const base = { family: FAMILY, table: TABLE };
  const out: unknown[] = [{ metainfo: { json_schema_version: 1 } }, { table: { family: FAMILY, name: TABLE, handle: 1 } }];
  const sets = new Map<string, Element[]>();
  for (const e of parts.elements ?? []) sets.set(e.set, [...(sets.get(e.set) ?? []), e]);
  for (const [name, elems] of sets) {
    const isMap = elems.some((e) => e.value !== undefined);
    const elem = elems.map((e) => {
      const key = e.comment !== undefined ? { elem: { val: e.key, comment: e.comment } } : e.key;
      return isMap ? [key, e.value] : key;
    });
    const shape = forwardAddrMaps().includes(name) && !parts.oldShape ? FORWARD_MAP_SHAPE : {};
    out.push({ [isMap ? 'map' : 'set']: { ...base, name, type: 'x', handle: 2, ...(isMap ? { map: 'y' } : {}), ...shape, elem } });
  }
  let handle = 10;
  if (parts.priority !== null) {
    for (const c of baseChains(parts.priority ?? priorityFor(false))) out.push({ chain: { ...base, name: c.name, handle: handle++, type: c.type, hook: c.hook, prio: c.prio, policy: 'accept' } });
    if (parts.rules !== false) {
      for (const [chain, rules] of Object.entries(staticRules())) for (const expr of rules) out.push({ rule: { ...base, chain, handle: handle++, expr } });
    }
  }
  for (const r of parts.extraRules ?? []) out.push({ rule: { ...base, chain: r.chain, handle: r.handle, expr: r.expr, ...(r.comment ? { comment: r.comment } : {}) } });
  return JSON.stringify({ nftables: out });
}

export const tableOf = (parts: ListingParts = {}): TableState => parseTable(listing(parts));
