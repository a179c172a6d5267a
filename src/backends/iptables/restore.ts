/**
 * Restoring many attachments at once (pure), for one family: after `iptables -t nat -F`, a flush of
 * the ruleset or the deletion of our chains, one restore document that re-creates the shared chains
 * and jumps once and every live attachment's CNI-DN chain and entry rules. Each attachment's lines are
 * ADD's repair lines (render.ts addRepairLines), computed over the state as the earlier lines of the
 * same document leave it, so shared rules are written once. Plans come oldest first: entry rules are
 * inserted at the top, so the newest owner of a port wins, as with ADDs.
 */
import type { Family } from '../../net/ip.js';
import type { FamilyPlan, Plan } from '../../portmap/plan.js';
import { entryKey, tokenize } from './parse.js';
import {
  type Args, KUBE_SERVICES, MASQ, OWN_MARKER, SETMARK, TOP_DNAT, addRepairLines, dnatChain, dnatRules, entryRules,
  jumpToDnat, jumpToMasq, masqRule, natDocument, needsMasqChains, setMarkRule, targetOf,
} from './render.js';

/** Chains of one table as `iptables-save -t <table>` prints them: every declared chain, with its rules. */
export type SavedTable = Map<string, Args[]>;

/** Parses `iptables-save -t nat` output (pure). */
export function parseSave(text: string): SavedTable {
  const out: SavedTable = new Map();
  for (const raw of text.split('\n')) {
    const l = raw.trim();
    if (l.startsWith(':')) {
      const name = l.slice(1).split(/\s+/)[0];
      if (name && !out.has(name)) out.set(name, []);
    } else if (l.startsWith('-A ')) {
      const words = tokenize(l);
      const chain = words[1];
      if (!chain) continue;
      if (!out.has(chain)) out.set(chain, []);
      out.get(chain)!.push(words.slice(2));
    }
  }
  return out;
}

const familyOf = (plan: Plan, family: Family): FamilyPlan | undefined => plan.families.find((f) => f.family === family);

/** What is gone in one family: our shared chains and jumps, or an attachment's chain or entry rules. */
export function natDamage(state: SavedTable, plans: readonly Plan[], family: Family, same: (a: Args, b: Args) => boolean): string[] {
  const mine = plans.flatMap((p) => {
    const fp = familyOf(p, family);
    return fp ? [{ plan: p, fp }] : [];
  });
  if (mine.length === 0) return [];
  const out: string[] = [];
  const ip = family === 4 ? 'IPv4' : 'IPv6';
  if (!state.has(TOP_DNAT)) out.push(`${ip}: chain ${TOP_DNAT} is missing`);
  for (const c of ['PREROUTING', 'OUTPUT']) {
    if (!(state.get(c) ?? []).some((r) => same(r, jumpToDnat()))) out.push(`${ip}: the jump from ${c} to ${TOP_DNAT} is missing`);
  }
  if (mine.some(({ plan, fp }) => needsMasqChains(plan, fp)) && !(state.get('POSTROUTING') ?? []).some((r) => same(r, jumpToMasq()))) {
    out.push(`${ip}: the jump from POSTROUTING to ${MASQ} is missing`);
  }
  const entries = new Set((state.get(TOP_DNAT) ?? []).map(entryKey));
  let broken = 0;
  for (const { plan, fp } of mine) {
    const chain = state.get(dnatChain(plan.owner.network, plan.owner.containerID));
    const dnats = (chain ?? []).filter((r) => targetOf(r) === 'DNAT').length;
    const wantDnats = dnatRules(plan, fp).filter((r) => targetOf(r) === 'DNAT').length;
    if (!chain || dnats < wantDnats || entryRules(plan, fp).some((e) => !entries.has(entryKey(e)))) broken++;
  }
  if (broken > 0) out.push(`${ip}: ${broken} attachment(s) lost their rules`);
  return out;
}

/** The shared part as the lines of one plan leave it, so that the next plan's lines do not repeat it. */
function afterPlan(state: SavedTable, plan: Plan, fp: FamilyPlan, same: (a: Args, b: Args) => boolean): void {
  const chain = dnatChain(plan.owner.network, plan.owner.containerID);
  const entries = (state.get(TOP_DNAT) ?? []).filter((r) => targetOf(r) !== chain);
  state.set(TOP_DNAT, [...entryRules(plan, fp), ...entries]);
  for (const c of ['PREROUTING', 'OUTPUT']) {
    const list = state.get(c) ?? [];
    const kube = list.findIndex((r) => r[r.length - 1] === KUBE_SERVICES && r[r.length - 2] === '-j');
    const mine = list.findIndex((r) => same(r, jumpToDnat()));
    if (mine < 0 || kube > mine) state.set(c, [...list.filter((r) => !same(r, jumpToDnat())), jumpToDnat()]);
  }
  if (needsMasqChains(plan, fp)) {
    const add = (c: string, rule: Args, first = false) => {
      const list = state.get(c) ?? [];
      if (!list.some((r) => same(r, rule))) state.set(c, first ? [rule, ...list] : [...list, rule]);
    };
    add(SETMARK, setMarkRule(plan.markMasqBit));
    add(MASQ, masqRule(plan.markMasqBit));
    add('POSTROUTING', jumpToMasq(), true);
  }
  state.set(chain, [OWN_MARKER, ...dnatRules(plan, fp)]);
}

/** One nat document for one family re-creating `plans` (oldest first) over `state` (which it does not change). */
export function restoreNatDocument(saved: SavedTable, plans: readonly Plan[], family: Family, same: (a: Args, b: Args) => boolean): string | undefined {
  const state: SavedTable = new Map([...saved].map(([k, v]) => [k, [...v]]));
  const lines: string[] = [];
  for (const plan of plans) {
    const fp = familyOf(plan, family);
    if (!fp) continue;
    lines.push(...addRepairLines(plan, fp, { chains: state }, same));
    afterPlan(state, plan, fp, same);
  }
  return lines.length > 0 ? natDocument(lines) : undefined;
}

/** Whether any plan forwards IPv4 localhost (the guard must be in place). */
export const needsGuard = (plans: readonly Plan[], family: Family): boolean =>
  family === 4 && plans.some((p) => familyOf(p, 4)?.localhost);

