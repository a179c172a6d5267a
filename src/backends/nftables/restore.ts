/**
 * Restoring many attachments at once (pure): after a firewall reload or flush, one transaction that
 * rewrites the skeleton once and brings every live attachment's elements back, for `portmap restore`,
 * `portmap watch` and a call that finds the table gone (self-healing). The same elements and rules as
 * ADD's (render.ts: ownerElements, podnetElements, conditionalRules, skeletonFor); what differs from
 * slowAdd is only that N plans share one skeleton and one transaction, the newest plan winning a key
 * two of them claim.
 */
import { type Cidr, cidrContains, parseCidr } from '../../net/ip.js';
import { attachmentName, parseOwnerComment } from '../../portmap/owner.js';
import type { Plan } from '../../portmap/plan.js';
import type { SkeletonSettings } from '../backend.js';
import { type Command, type Element, FAMILY, TABLE, base } from './json.js';
import { type TableState, elementIndex, sameJson } from './parse.js';
import { type Takeover, describeKey, ruleSignature, skeletonOver } from './reconcile.js';
import {
  OWNERS_SET, READY_MAP, addElements, baseChains, casDelete, conditionalRules, deleteRule, ownerElements,
  podnetElements, priorityFor, staticRules, witnessOf,
} from './render.js';

const CONDITIONAL = 'conditional';

/** The settings of the newest plan (the README's rule: the last ADD's node-wide values apply). */
export const settingsOf = (plans: readonly Plan[]): SkeletonSettings | undefined => plans[plans.length - 1];

/**
 * What is gone from the skeleton: the table, a base chain (or its hook), a static rule, the ready mark.
 * A ready mark for other settings is not damage (an ADD with other settings rewrites the skeleton).
 */
export function skeletonDamage(state: TableState | undefined, settings: SkeletonSettings): string[] {
  if (!state) return [`table ${FAMILY} ${TABLE} is missing`];
  const out: string[] = [];
  for (const c of baseChains(priorityFor(settings.afterServices))) {
    const have = state.chains.get(c.name);
    if (!have) out.push(`chain ${c.name} is missing`);
    else if (have.hook !== c.hook) out.push(`chain ${c.name} hooks ${have.hook ?? 'nothing'}`);
  }
  for (const name of ['hostports', CONDITIONAL]) if (!state.chains.has(name)) out.push(`chain ${name} is missing`);
  for (const [chain, rules] of Object.entries(staticRules())) {
    if (!state.chains.has(chain)) continue;
    const have = state.rules.filter((r) => r.chain === chain).map((r) => ruleSignature(r.expr));
    if (!sameJson(have, rules.map(ruleSignature))) out.push(`chain ${chain} lost its rules`);
  }
  if (!state.elements.some((e) => e.set === READY_MAP)) out.push('the ready mark is missing');
  return out;
}

/** The table is gone or cannot serve the fast path: what a CNI call's self-healing looks for. */
export const tableGone = (state: TableState | undefined, settings: SkeletonSettings): boolean =>
  skeletonDamage(state, settings).length > 0;

/** Forwards of the plans that are missing from the table (a key held by another owner is not missing). */
export function forwardDamage(state: TableState | undefined, plans: readonly Plan[]): string[] {
  if (!state) return [];
  const find = elementIndex(state);
  const out: string[] = [];
  for (const plan of plans) {
    const missing = ownerElements(plan).filter((e) => e.set !== OWNERS_SET && !find(e.set, e.key)).length;
    const rules = conditionalRules(plan).length;
    const haveRules = rules && state.rules.filter((r) => r.chain === CONDITIONAL && parseOwnerComment(r.comment)?.id === plan.owner.id).length;
    if (missing > 0 || haveRules < rules) {
      out.push(`${attachmentName(plan.owner)}: ${missing + rules - haveRules} entries missing`);
    }
  }
  return out;
}

const keyText = (e: Pick<Element, 'set' | 'key'>): string => `${e.set}|${JSON.stringify(e.key)}`;

/** addElements, one command per set: nft parses and commits thousands of elements much faster so. */
function addBatched(elements: readonly Element[]): Command[] {
  const bySet = new Map<string, unknown[]>();
  for (const c of addElements(elements)) {
    const el = (c.add as { element: { name: string; elem: unknown[] } }).element;
    const list = bySet.get(el.name) ?? [];
    list.push(...el.elem);
    bySet.set(el.name, list);
  }
  return [...bySet].map(([name, elem]) => ({ add: { element: { ...base, name, elem } } }));
}

function prefixCidr(key: unknown): Cidr | undefined {
  const p = (key as { prefix?: { addr: string; len: number } } | null)?.prefix;
  return p ? parseCidr(`${p.addr}/${p.len}`) : undefined;
}

/** Pod subnets of all plans against the table: outermost wins, subnets inside a new one are replaced. */
function podnetCommands(state: TableState | undefined, plans: readonly Plan[]): Command[] {
  const wanted = new Map<string, { e: Element; cidr: Cidr }>();
  for (const p of plans) for (const e of podnetElements(p)) wanted.set(keyText(e), { e, cidr: prefixCidr(e.key)! });
  const list = [...wanted.values()];
  const outer = list.filter((w, i) => !list.some((o, j) => j !== i && o.e.set === w.e.set && cidrContains(o.cidr, w.cidr.network) &&
    (o.cidr.prefixLength < w.cidr.prefixLength || (o.cidr.prefixLength === w.cidr.prefixLength && j < i))));
  const existing = (state?.elements ?? []).flatMap((x) => {
    const cidr = prefixCidr(x.key);
    return cidr ? [{ e: x, cidr }] : [];
  });
  const cmds: Command[] = [];
  const deleted = new Set<string>();
  for (const w of outer) {
    const same = existing.filter((x) => x.e.set === w.e.set);
    if (same.some((x) => x.cidr.prefixLength <= w.cidr.prefixLength && cidrContains(x.cidr, w.cidr.network))) continue;
    for (const x of same) {
      if (!cidrContains(w.cidr, x.cidr.network) || deleted.has(keyText(x.e))) continue;
      deleted.add(keyText(x.e));
      cmds.push({ delete: { element: { ...base, name: x.e.set, elem: [x.e.key] } } });
    }
    cmds.push(...addElements([w.e]));
  }
  return cmds;
}

/**
 * One transaction re-creating `plans` (oldest first) over `state`: the skeleton for the newest plan's
 * settings, every pod subnet, every element (a key two plans claim goes to the newer one, whose
 * takeover removes the older one's witness), every conditional rule.
 */
export function restoreCommands(state: TableState | undefined, plans: readonly Plan[]): { commands: Command[]; takeovers: Takeover[] } {
  const settings = settingsOf(plans);
  if (!settings) return { commands: [], takeovers: [] };
  const cmds: Command[] = [...skeletonOver(state, settings), ...podnetCommands(state, plans)];

  // The final element of every key, newest plan last; owners that lost a key lose their witness.
  const wanted = new Map<string, { e: Element; owner: string; comment: string }>();
  const overtaken = new Set<string>();
  const takeovers: Takeover[] = [];
  for (const plan of plans) {
    for (const e of ownerElements(plan)) {
      if (e.set === OWNERS_SET) continue;
      const k = keyText(e);
      const prev = wanted.get(k);
      if (prev && prev.owner !== plan.owner.id) {
        overtaken.add(prev.owner);
        takeovers.push({ set: e.set, key: describeKey(e), from: prev.comment, to: plan.owner.comment });
      }
      wanted.set(k, { e, owner: plan.owner.id, comment: plan.owner.comment });
    }
  }
  for (const plan of plans) {
    const w = ownerElements(plan)[0];
    if (w && w.set === OWNERS_SET && !overtaken.has(plan.owner.id)) wanted.set(keyText(w), { e: w, owner: plan.owner.id, comment: plan.owner.comment });
  }
  const find = elementIndex(state);
  const owners = new Set(plans.map((p) => p.owner.id));
  const adds: Element[] = [];
  const replaced: Element[] = [];
  for (const { e, owner, comment } of wanted.values()) {
    const current = find(e.set, e.key);
    if (!current) adds.push(e);
    else if (sameJson(current.value, e.value) && current.comment === e.comment) continue;
    else {
      const previous = parseOwnerComment(current.comment)?.id;
      if (previous && previous !== owner) {
        takeovers.push({ set: e.set, key: describeKey(e), from: current.comment ?? 'an unknown owner', to: comment });
        if (!owners.has(previous)) overtaken.add(previous);
      }
      replaced.push(e);
      adds.push(e);
    }
  }
  // Replacements delete the old element first (replaceElements' order), then every addition at once.
  cmds.push(...replaced.map((e) => ({ delete: { element: { ...base, name: e.set, elem: [e.key] } } })), ...addBatched(adds));
  // Witnesses in the table of owners that lost a key (see OWNERS_SET).
  const stale = [...overtaken].map((id) => witnessOf(id)).filter((w) => find(w.set, w.key));
  cmds.push(...casDelete(stale));
  for (const plan of plans) {
    const rules = conditionalRules(plan);
    if (rules.length === 0) continue;
    for (const r of state?.rules ?? []) {
      if (r.chain === CONDITIONAL && parseOwnerComment(r.comment)?.id === plan.owner.id) cmds.push(deleteRule(CONDITIONAL, r.handle));
    }
    cmds.push(...rules);
  }
  return { commands: cmds, takeovers };
}
