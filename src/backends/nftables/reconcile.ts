/**
 * The pure reasoning of the nftables backend: (our table as read, plan) -> the commands of one
 * transaction, or CHECK's findings. Nothing here runs a process; backend.ts reads, calls these, applies.
 *
 * - fastAdd: additions only, valid only on a ready skeleton (see READY_MAP in render.ts).
 * - slowAdd: the skeleton rewritten (a table of an older shape migrated), the attachment's elements added
 *   or taking keys over from another owner (whose witness goes, see OWNERS_SET), splitting the other
 *   owner's port ranges where they overlap only in part, its conditional rules replaced.
 * - fastDel: deletes only, guarded by the owner's witness. compareDel: compare-and-delete of each element.
 * - gcCommands: stale elements and rules of a network, unused pod subnets, the skeleton rewritten.
 * - checkFindings: what differs from what the plan wants.
 */
import { cidrContains } from '../../net/ip.js';
import { type Owner, ownerOf, parseOwnerComment } from '../../portmap/owner.js';
import type { Protocol } from '../../portmap/config.js';
import type { Plan } from '../../portmap/plan.js';
import { subtractIntervals } from '../../portmap/ranges.js';
import type { SkeletonSettings } from '../backend.js';
import { type Command, type Element, FAMILY, TABLE, base } from './json.js';
import { type KeyPorts, type TableState, elementIndex, keyPorts, keyPrefix, sameJson } from './parse.js';
import {
  FORWARD_MAP_SHAPE, OWNERS_SET, addElements, baseChains, casDelete, conditionalRules, delElements, deleteChains, deleteRule,
  forwardAddrMaps, mapNames, ownerElements, podnetElements, priorityFor, readyHash, replaceElements, requireReady, skeletonFor,
  spanKey, staticRules, witnessOf,
} from './render.js';

/** A difference between the kernel and the plan: what is wrong, and how to fix it. */
export interface Finding {
  msg: string;
  details: string;
}

/** A key another attachment held and this ADD takes over (logged by the backend). */
export interface Takeover {
  set: string;
  /** The key in words (describeKey). */
  key: string;
  /** The key's ports, when it is a forward-map key (slowAdd sets it). */
  ports?: KeyPorts;
  from: string;
  to: string;
}

const CONDITIONAL = 'conditional';

const ownedBy = (owner: Pick<Owner, 'id'>) => (comment: string | undefined) => parseOwnerComment(comment)?.id === owner.id;

/** Attachments with conditions use rules, which the additions-only and deletes-only paths do not cover. */
export const hasConditions = (plan: Plan): boolean => plan.families.some((f) => f.conditions);

/** A readable key: `tcp 8080`, `192.0.2.1 tcp 8080`, `udp 40000-56383`. */
export function describeKey(e: Pick<Element, 'key'>): string {
  // Only an object key is a concatenation: a string key (an address) has String.prototype.concat.
  const concat = typeof e.key === 'object' && e.key !== null ? (e.key as { concat?: unknown }).concat : undefined;
  const parts = Array.isArray(concat) ? concat : [e.key];
  return parts.map((p) => {
    const range = (p as { range?: unknown } | null)?.range;
    return Array.isArray(range) ? range.join('-') : String(p);
  }).join(' ');
}

interface Interval {
  e: Element;
  first: number;
  last: number;
}

/**
 * The elements of interval maps by set and group (protocol, hostIP), sorted: which of them share a port
 * with [first, last], in O(log n + hits). Elements of one map never overlap (the kernel refuses it).
 */
function intervalIndex(state: TableState | undefined, sets: ReadonlySet<string>): (set: string, q: KeyPorts) => Element[] {
  const index = new Map<string, Interval[]>();
  for (const e of state?.elements ?? []) {
    if (!sets.has(e.set)) continue;
    const k = keyPorts(e.key);
    if (!k) continue;
    const id = `${e.set}|${k.group}`;
    let list = index.get(id);
    if (!list) index.set(id, (list = []));
    list.push({ e, first: k.first, last: k.last });
  }
  for (const list of index.values()) list.sort((a, b) => a.first - b.first);
  return (set, q) => {
    const list = index.get(`${set}|${q.group}`) ?? [];
    // The first interval that ends at or after q.first (ends are sorted too: no overlaps).
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.last < q.first) lo = mid + 1;
      else hi = mid;
    }
    const out: Element[] = [];
    for (let i = lo; i < list.length && list[i]!.first <= q.last; i++) out.push(list[i]!.e);
    return out;
  };
}

/**
 * A table made before the address maps were interval maps with counters: `add map` cannot change a map's
 * flags, so each old map is deleted (after the rules that use it, which the skeleton rewrites) and made
 * again by the skeleton, and every element it held is added back, in the same transaction. `before`
 * goes ahead of the skeleton, `after` behind it.
 */
export function migrateForwardMaps(state: Pick<TableState, 'sets' | 'elements' | 'chains' | 'rules'> | undefined): { before: Command[]; after: Command[] } {
  const old = forwardAddrMaps().filter((name) => {
    const shape = state?.sets?.get(name);
    return shape !== undefined && !(FORWARD_MAP_SHAPE.flags.every((f) => shape.flags.includes(f)) && shape.counter);
  });
  if (!state || old.length === 0) return { before: [], after: [] };
  const before: Command[] = [];
  if (state.chains.has('hostports') || state.rules.some((r) => r.chain === 'hostports')) before.push({ flush: { chain: { ...base, name: 'hostports' } } });
  for (const name of old) before.push({ delete: { map: { ...base, name } } });
  const carried = state.elements.filter((e) => old.includes(e.set));
  return { before, after: addElements(carried) };
}

/** The skeleton of `settings` over a table as read: base chains moved, old maps migrated. */
export function skeletonOver(state: TableState | undefined, settings: SkeletonSettings): Command[] {
  const migration = migrateForwardMaps(state);
  return [
    ...(state ? deleteChains(mismatchedBaseChains(state, priorityFor(settings.afterServices))) : []),
    ...migration.before,
    ...skeletonFor(settings),
    ...migration.after,
  ];
}

/** Chain names whose type, hook or priority differ from what `priority` wants. */
export function mismatchedBaseChains(state: TableState, priority: number): string[] {
  return baseChains(priority)
    .filter((c) => {
      const have = state.chains.get(c.name);
      return have !== undefined && (have.hook !== c.hook || have.prio !== c.prio || have.type !== c.type);
    })
    .map((c) => c.name);
}

/** A rule's references (sets, jump targets, verdicts): insensitive to how nft prints matches. */
function signature(expr: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string' && v.startsWith('@')) out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (['jump', 'return', 'masquerade', 'drop', 'dnat', 'fib'].includes(k)) out.push(k);
        walk(x);
      }
    }
  };
  walk(expr);
  return out.join(',');
}

/** For restore.ts: the same comparison of static rules. */
export const ruleSignature = signature;

const deleteElement = (set: string, key: unknown): Command => ({ delete: { element: { ...base, name: set, elem: [key] } } });

/**
 * Pod subnets to add, knowing the table: an interval set refuses overlapping elements ("conflicting
 * intervals specified"), so a subnet inside one already there (another network's larger subnet) is
 * skipped, and subnets inside the new one are replaced by it.
 */
function podnetCommands(state: TableState | undefined, plan: Plan): Command[] {
  const cmds: Command[] = [];
  for (const e of podnetElements(plan)) {
    const mine = keyPrefix(e.key)!;
    const existing = (state?.elements ?? []).flatMap((x) => {
      const cidr = x.set === e.set ? keyPrefix(x.key) : undefined;
      return cidr ? [{ key: x.key, cidr }] : [];
    });
    if (existing.some((x) => x.cidr.prefixLength <= mine.prefixLength && cidrContains(x.cidr, mine.network))) continue;
    for (const x of existing) if (cidrContains(mine, x.cidr.network)) cmds.push(deleteElement(e.set, x.key));
    cmds.push(...addElements([e]));
  }
  return cmds;
}

/**
 * The common ADD: additions only; the transaction fails unless the skeleton is ready for these settings,
 * and unless the attachment has no elements yet: its witness is created, not added, so an ADD of an
 * attachment that already has forwards (a runtime retrying with other ports) takes the slow path, which
 * removes what the new plan no longer holds.
 */
export function fastAdd(plan: Plan): Command[] {
  const ready = readyHash(priorityFor(plan.afterServices), plan.serviceCIDRs);
  const [witness, ...rest] = addElements(ownerElements(plan));
  const created = witness ? [{ create: witness.add }] : [];
  return [requireReady(ready), ...addElements(podnetElements(plan)), ...created, ...rest];
}

/** The ADD that read the table: skeleton, pod subnets, elements (taking keys over), conditional rules. */
export function slowAdd(state: TableState | undefined, plan: Plan): { commands: Command[]; takeovers: Takeover[] } {
  const cmds: Command[] = [...skeletonOver(state, plan), ...podnetCommands(state, plan)];
  const find = elementIndex(state);
  const takeovers: Takeover[] = [];
  const overtaken = new Set<string>();
  const takeOver = (set: string, current: Element) => {
    const previous = parseOwnerComment(current.comment)?.id;
    if (previous === plan.owner.id) return;
    const ports = keyPorts(current.key);
    takeovers.push({ set, key: describeKey(current), ...(ports ? { ports } : {}), from: current.comment ?? 'an unknown owner', to: plan.owner.comment });
    if (previous) overtaken.add(previous);
  };
  const elements = ownerElements(plan);
  // Address maps are interval maps: an element of ours may cover several old ones, or part of one.
  const addrSets = new Set(forwardAddrMaps());
  const portSetOf = new Map([4, 6].flatMap((f) => {
    const m = mapNames(f as 4 | 6);
    return [[m.hostportsAddr, m.hostportsPort], [m.hostipportsAddr, m.hostipportsPort]] as Array<[string, string]>;
  }));
  const overlapping = intervalIndex(state, addrSets);
  const deleted = new Set<Element>();
  /** Old address elements that share ports with ours without being the same key, and our parts of them. */
  const cuts = new Map<Element, KeyPorts[]>();
  for (const e of elements) {
    const k = addrSets.has(e.set) ? keyPorts(e.key) : undefined;
    const over = k ? overlapping(e.set, k) : [];
    if (over.length === 1 && sameJson(over[0]!.key, e.key)) continue; // the same key: compared below
    for (const x of over) {
      const parts = cuts.get(x);
      if (parts) parts.push(k!);
      else cuts.set(x, [k!]);
    }
  }
  // Old elements that overlap ours without being the same key: deleted, what stays outside ours added
  // back with its owner's comment (a range taken over in part), a single's port element deleted with it.
  const mine = ownedBy(plan.owner);
  for (const [x, parts] of cuts) {
    const xk = keyPorts(x.key)!;
    cmds.push(deleteElement(x.set, x.key));
    deleted.add(x);
    takeOver(x.set, x);
    // What our own earlier ADD held outside the new plan goes (see the sweep below).
    const pieces = mine(x.comment) ? [] : subtractIntervals(xk.first, xk.last, parts).map((iv) => ({
      set: x.set,
      key: spanKey({ protocol: xk.protocol as Protocol, first: iv.first, last: iv.last, ...(xk.hostIP !== undefined ? { hostIP: xk.hostIP } : {}) }),
      value: x.value,
      ...(x.comment !== undefined ? { comment: x.comment } : {}),
    }));
    cmds.push(...addElements(pieces));
    const port = xk.first === xk.last ? find(portSetOf.get(x.set)!, x.key) : undefined;
    if (port && !deleted.has(port)) {
      cmds.push(deleteElement(port.set, port.key));
      deleted.add(port);
    }
  }
  /**
   * A new span must not keep port elements inside it (a stale single's, or one left without its address
   * element): the second DNAT rule would send those ports to the span's pod at the old container port.
   */
  const portsInside = intervalIndex(state, new Set(portSetOf.values()));
  const dropStalePorts = (e: Element): void => {
    const k = addrSets.has(e.set) ? keyPorts(e.key) : undefined;
    if (!k || k.first === k.last) return;
    for (const x of portsInside(portSetOf.get(e.set)!, k)) {
      if (deleted.has(x)) continue;
      cmds.push(deleteElement(x.set, x.key));
      deleted.add(x);
      takeOver(x.set, x);
    }
  };
  for (const e of elements) {
    dropStalePorts(e);
    const current = find(e.set, e.key);
    if (!current || deleted.has(current)) {
      cmds.push(...addElements([e]));
    } else if (sameJson(current.value, e.value) && current.comment === e.comment) continue;
    else {
      takeOver(e.set, current);
      cmds.push(...replaceElements([e]));
    }
  }
  // An earlier ADD of this attachment (a retry with other ports, another pod address): what the new
  // plan does not hold goes, so the attachment ends with exactly the new forwards.
  const wanted = elementIndex({ chains: new Map(), rules: [], elements });
  for (const x of state?.elements ?? []) {
    if (deleted.has(x) || !mine(x.comment) || wanted(x.set, x.key)) continue;
    cmds.push(deleteElement(x.set, x.key));
    deleted.add(x);
  }
  // The previous owners' DELs must not delete blindly any more (see OWNERS_SET).
  cmds.push(...casDelete([...overtaken].map((id) => witnessOf(id))));
  for (const r of state?.rules ?? []) if (r.chain === CONDITIONAL && mine(r.comment)) cmds.push(deleteRule(CONDITIONAL, r.handle));
  cmds.push(...conditionalRules(plan));
  return { commands: cmds, takeovers };
}

/** The common DEL: deletes only, all or none (the witness goes first; see OWNERS_SET). */
export const fastDel = (plan: Plan): Command[] => delElements(ownerElements(plan));

/** The DEL that read the table: compare-and-delete of each element the owner holds, and its rules. */
export function compareDel(state: TableState, owner: Pick<Owner, 'id'>): Command[] {
  const mine = ownedBy(owner);
  return [
    ...casDelete(state.elements.filter((e) => mine(e.comment))),
    ...state.rules.filter((r) => r.chain === CONDITIONAL && mine(r.comment)).map((r) => deleteRule(r.chain, r.handle)),
  ];
}

/** What GC removes from a network: elements and rules of owners not in `valid`. */
export interface GcInput {
  network: string;
  /** Owner ids still valid in this network. */
  valid: ReadonlySet<string>;
  /** The node-wide settings to rewrite the skeleton with; undefined: leave it (not the configured backend). */
  settings?: SkeletonSettings;
}

/**
 * GC reads and deletes anyway, so it also rewrites the skeleton (a chain flushed by hand comes back),
 * and prunes pod subnets no pod of ours needs as a hairpin source any more.
 */
export function gcCommands(state: TableState, gc: GcInput): Command[] {
  const networkId = ownerOf(gc.network, '', '').networkId;
  const stale = (comment: string | undefined): boolean => {
    const p = parseOwnerComment(comment);
    return p !== undefined && p.networkId === networkId && !gc.valid.has(p.id);
  };
  const staleElements = state.elements.filter((e) => stale(e.comment));
  const remaining = state.elements.filter((e) => !stale(e.comment));
  const skeleton = gc.settings ? skeletonOver(state, gc.settings) : [];
  const cmds: Command[] = [
    ...skeleton,
    ...casDelete(staleElements),
    ...state.rules.filter((r) => r.chain === CONDITIONAL && stale(r.comment)).map((r) => deleteRule(r.chain, r.handle)),
  ];
  for (const f of [4, 6] as const) {
    const m = mapNames(f);
    const pods = remaining.filter((e) => e.set === m.snat).map((e) => String(e.key));
    for (const net of remaining.filter((e) => e.set === m.podnets)) {
      const cidr = keyPrefix(net.key);
      if (cidr && !pods.some((ip) => cidrContains(cidr, ip))) cmds.push(deleteElement(m.podnets, net.key));
    }
  }
  return cmds;
}

const CHECK_FIX = 'a new ADD (or restarting the pod) reinstalls them';

/** CHECK: the skeleton and this attachment's forwards as the plan wants them. Empty when all is well. */
export function checkFindings(state: TableState | undefined, plan: Plan): Finding[] {
  const finding = (msg: string, details = CHECK_FIX): Finding => ({ msg, details });
  if (!state) {
    return [finding(`nftables table ${FAMILY} ${TABLE} not found`, `the hostPort rules are gone (was the ruleset flushed?); ${CHECK_FIX}`)];
  }
  const out: Finding[] = [];
  for (const c of baseChains(priorityFor(plan.afterServices))) {
    const have = state.chains.get(c.name);
    if (!have) out.push(finding(`chain ${c.name} missing from table ${FAMILY} ${TABLE}`));
    else if (have.hook !== c.hook || have.prio !== c.prio) {
      out.push(finding(`chain ${c.name} hooks ${have.hook} at priority ${have.prio}, expected ${c.hook} at ${c.prio}`));
    }
  }
  for (const [chain, rules] of Object.entries(staticRules())) {
    const have = state.rules.filter((r) => r.chain === chain).map((r) => signature(r.expr));
    if (!sameJson(have, rules.map(signature))) out.push(finding(`chain ${chain} of table ${FAMILY} ${TABLE} does not hold the expected rules`));
  }
  // The forwarding elements (not the witness: without it a DEL only takes its comparing path).
  const find = elementIndex(state);
  for (const e of ownerElements(plan).filter((x) => x.set !== OWNERS_SET)) {
    const current = find(e.set, e.key);
    if (!current) out.push(finding(`missing hostPort entry ${describeKey(e)} in ${e.set}`));
    else if (!sameJson(current.value, e.value) || parseOwnerComment(current.comment)?.id !== plan.owner.id) {
      const who = current.comment ?? 'another owner';
      out.push(finding(`hostPort entry ${describeKey(e)} in ${e.set} belongs to ${who}`, `another attachment took the port; ${CHECK_FIX}`));
    }
  }
  const want = conditionalRules(plan).length;
  const have = state.rules.filter((r) => r.chain === CONDITIONAL && ownedBy(plan.owner)(r.comment)).length;
  if (want !== have) out.push(finding(`expected ${want} conditional rules for this attachment, found ${have}`));
  return out;
}
