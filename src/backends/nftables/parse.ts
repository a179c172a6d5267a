import * as z from 'zod/mini';
import { type Cidr, ipFamily, parseCidr } from '../../net/ip.js';
import { type Element, type Expr, FAMILY, TABLE } from './json.js';

/** Our table as read back with `nft -j list table inet cni_portmap`. */
export interface TableState {
  chains: Map<string, { type?: string; hook?: string; prio?: number }>;
  rules: Array<{ chain: string; handle: number; comment?: string; expr: Expr[] }>;
  elements: Element[];
  /** How each set and map of ours is declared (flags, a counter per element): the skeleton's shape. */
  sets?: Map<string, SetShape>;
}

export interface SetShape {
  flags: string[];
  counter: boolean;
}

function buildSchemas() {
  const elemEntry = z.union([
    z.object({
      elem: z.looseObject({
        val: z.unknown(),
        comment: z.optional(z.string()),
        counter: z.optional(z.looseObject({ packets: z.optional(z.number()) })),
      }),
    }),
    z.unknown(),
  ]);

  const setLike = z.looseObject({
    family: z.string(),
    table: z.string(),
    name: z.string(),
    map: z.optional(z.unknown()),
    elem: z.optional(z.array(z.unknown())),
    flags: z.optional(z.union([z.string(), z.array(z.string())])),
    stmt: z.optional(z.array(z.unknown())),
  });

  const listing = z.object({
    nftables: z.array(
      z.looseObject({
        metainfo: z.optional(z.looseObject({ json_schema_version: z.optional(z.number()) })),
        table: z.optional(z.looseObject({ family: z.string(), name: z.string() })),
        chain: z.optional(
          z.looseObject({
            family: z.string(),
            table: z.string(),
            name: z.string(),
            type: z.optional(z.string()),
            hook: z.optional(z.string()),
            prio: z.optional(z.number()),
          }),
        ),
        rule: z.optional(
          z.looseObject({
            family: z.string(),
            table: z.string(),
            chain: z.string(),
            handle: z.number(),
            comment: z.optional(z.string()),
            expr: z.array(z.record(z.string(), z.unknown())),
          }),
        ),
        map: z.optional(setLike),
        set: z.optional(setLike),
      }),
    ),
  });
  return { elemEntry, listing };
}

let schemas: ReturnType<typeof buildSchemas> | undefined;
/** Built on first use: a CNI call on a fast path reads no listing and never pays for them. */
const schema = (): ReturnType<typeof buildSchemas> => (schemas ??= buildSchemas());

/** The shape of `nft -j list ...` output that this plugin reads (ours or any table: `portmap doctor`). */
export const parseListing = (json: string) => schema().listing.parse(JSON.parse(json));
export type Listing = ReturnType<typeof parseListing>;

/**
 * A set or map key as listed: `{elem: {val, comment, counter}}` when it carries a comment or a counter,
 * else the bare key.
 */
export function unwrap(entry: unknown): { key: unknown; comment?: string; packets?: number } {
  const parsed = schema().elemEntry.safeParse(entry);
  if (parsed.success && typeof parsed.data === 'object' && parsed.data !== null && 'elem' in parsed.data) {
    const e = (parsed.data as { elem: { val: unknown; comment?: string; counter?: { packets?: number } } }).elem;
    return {
      key: e.val,
      ...(e.comment !== undefined ? { comment: e.comment } : {}),
      ...(e.counter?.packets !== undefined ? { packets: e.counter.packets } : {}),
    };
  }
  return { key: entry };
}

/**
 * The prefix an interval-set key stands for: `{prefix: {addr, len}}`, or a bare address (nft lists a
 * one-address interval that way, as a /32 or /128). Undefined for anything else.
 */
export function keyPrefix(key: unknown): Cidr | undefined {
  const p = (key as { prefix?: { addr?: unknown; len?: unknown } } | null)?.prefix;
  let text: string | undefined;
  if (typeof key === 'string') text = key.includes('/') ? key : `${key}/${ipFamily(key) === 6 ? 128 : 32}`;
  else if (typeof p?.addr === 'string' && typeof p.len === 'number') text = `${p.addr}/${p.len}`;
  try {
    return text === undefined ? undefined : parseCidr(text);
  } catch {
    return undefined;
  }
}

const extras = (u: { comment?: string; packets?: number }) => ({
  ...(u.comment !== undefined ? { comment: u.comment } : {}),
  ...(u.packets !== undefined ? { packets: u.packets } : {}),
});

/** Parses the JSON listing of our table (pure). Throws when the output does not have the expected shape. */
export function parseTable(json: string): TableState {
  const doc = parseListing(json);
  const state: TableState = { chains: new Map(), rules: [], elements: [], sets: new Map() };
  for (const obj of doc.nftables) {
    const ours = (o: { family: string; table: string }) => o.family === FAMILY && o.table === TABLE;
    if (obj.chain && ours(obj.chain)) {
      const { name, type, hook, prio } = obj.chain;
      state.chains.set(name, { ...(type ? { type } : {}), ...(hook ? { hook } : {}), ...(prio !== undefined ? { prio } : {}) });
    }
    if (obj.rule && ours(obj.rule)) {
      const { chain, handle, comment, expr } = obj.rule;
      state.rules.push({ chain, handle, expr, ...(comment !== undefined ? { comment } : {}) });
    }
    const set = obj.map ?? obj.set;
    if (set && ours(set)) {
      const isMap = obj.map !== undefined;
      const flags = set.flags === undefined ? [] : typeof set.flags === 'string' ? [set.flags] : set.flags;
      const counter = (set.stmt ?? []).some((x) => typeof x === 'object' && x !== null && 'counter' in x);
      state.sets!.set(set.name, { flags, counter });
      for (const entry of set.elem ?? []) {
        if (isMap) {
          const [k, value] = entry as [unknown, unknown];
          const u = unwrap(k);
          state.elements.push({ set: set.name, key: u.key, value, ...extras(u) });
        } else {
          const u = unwrap(entry);
          state.elements.push({ set: set.name, key: u.key, ...extras(u) });
        }
      }
    }
  }
  return state;
}

/** Structural equality of nft JSON values (key order independent). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameJson(x, bb[i]));
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** JSON with object keys sorted: equal for values sameJson calls equal. */
function stableText(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableText).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableText(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The table's elements by set and key: one lookup per element of a plan, whatever the table's size. */
export function elementIndex(state: TableState | undefined): (set: string, key: unknown) => Element | undefined {
  const index = new Map<string, Element>();
  for (const e of state?.elements ?? []) index.set(`${e.set}|${stableText(e.key)}`, e);
  return (set, key) => index.get(`${set}|${stableText(key)}`);
}

/** The ports of a forward-map key (`[hostIP,] protocol, port | {range: [a, b]}`) and the rest as a group. */
export interface KeyPorts {
  group: string;
  protocol: string;
  hostIP?: string;
  first: number;
  last: number;
}

export function keyPorts(key: unknown): KeyPorts | undefined {
  const concat = (key as { concat?: unknown } | null)?.concat;
  if (!Array.isArray(concat) || concat.length < 2 || concat.length > 3) return undefined;
  const ports = concat[concat.length - 1] as unknown;
  const range = (ports as { range?: unknown } | null)?.range;
  const [first, last] = typeof ports === 'number' ? [ports, ports] : Array.isArray(range) ? range : [];
  if (typeof first !== 'number' || typeof last !== 'number') return undefined;
  const protocol = String(concat[concat.length - 2]);
  const hostIP = concat.length === 3 ? String(concat[0]) : undefined;
  return { group: `${hostIP ?? '*'} ${protocol}`, protocol, first, last, ...(hostIP !== undefined ? { hostIP } : {}) };
}
