/**
 * The nftables backend: read our table when needed, decide (reconcile.ts, pure), apply one transaction
 * (runner.ts). Layout and rules: render.ts.
 */
import { CniError, ErrorCode } from '../../cni/errors.js';
import { type Runner, failureReason } from '../../host/exec.js';
import { log } from '../../host/log.js';
import type { Family } from '../../net/ip.js';
import { type Owner, commentName, parseOwnerComment } from '../../portmap/owner.js';
import { type Plan, validOwnerIds } from '../../portmap/plan.js';
import type { AddOutcome, Backend, CallPath, GcScope, LiveAttachments, PortTakeover, SkeletonSettings } from '../backend.js';
import { FAMILY, TABLE } from './json.js';
import type { TableState } from './parse.js';
import { type Takeover, checkFindings, compareDel, fastAdd, fastDel, gcCommands, hasConditions, migrateForwardMaps, slowAdd } from './reconcile.js';
import { forwardMaps, priorityFor, skeleton } from './render.js';
import { forwardDamage, restoreCommands, settingsOf, skeletonDamage, tableGone } from './restore.js';
import { NftRunner } from './runner.js';

/** Any settings: what self-healing looks at (the table, base chains and hooks, static rules, ready mark) does not depend on them. */
const ANY_SETTINGS: SkeletonSettings = { afterServices: false, serviceCIDRs: [] };

/**
 * The keys slowAdd took over, in host-port terms: one per family and key (the address and port maps
 * of one key are one takeover); the family is the forward map's.
 */
export function portTakeovers(takeovers: readonly Takeover[]): PortTakeover[] {
  const familyOf = new Map<string, Family>(([4, 6] as const).flatMap((f) => forwardMaps(f).flatMap(([addr, port]) => [[addr, f], [port, f]] as const)));
  const out = new Map<string, PortTakeover>();
  for (const t of takeovers) {
    const family = familyOf.get(t.set);
    if (!family || !t.ports) continue;
    const owner = parseOwnerComment(t.from);
    const key = `${family} ${t.key} ${owner?.id ?? t.from}`;
    if (out.has(key)) continue;
    const name = commentName(owner);
    const { protocol, first, last, hostIP } = t.ports;
    out.set(key, {
      family,
      protocol,
      first,
      last,
      ...(hostIP !== undefined ? { hostIP } : {}),
      from: { ...(owner ? { id: owner.id } : {}), ...(name ? { name } : {}) },
    });
  }
  return [...out.values()];
}

/** Why the fast ADD did not apply, in words (a debug line: the slow path that follows is expected). */
function fastAddMissed(state: TableState | undefined, err: unknown): string {
  if (!state) return `table ${FAMILY} ${TABLE} does not exist yet (the first ADD on this node, or the ruleset was flushed): creating it`;
  return `nft refused the additions (${failureReason(err)}): a key held by another attachment, this attachment's forwards of an earlier ADD, a skeleton written for other settings, or a table of an older shape; repairing from the table as read`;
}

export class NftablesBackend implements Backend {
  readonly name = 'nftables' as const;
  readonly provesOwnership = true;
  private readonly nft: NftRunner;
  heal?: LiveAttachments;

  constructor(runner?: Runner) {
    this.nft = new NftRunner(runner);
  }

  async add(plan: Plan): Promise<AddOutcome> {
    let missed: unknown;
    if (!hasConditions(plan)) {
      try {
        await this.nft.apply(fastAdd(plan));
        return { path: 'fast', takeovers: [] };
      } catch (err) {
        // No ready skeleton (first ADD, other settings), a key held by another owner, an overlapping subnet.
        missed = err;
      }
    }
    const state = await this.nft.readTable();
    if (missed !== undefined) log.debug(`nftables ADD: fast path not taken: ${fastAddMissed(state, missed)}`);
    // The call's own record is already written: healing is for the others (slowAdd creates what this one needs).
    if (await this.healIfGone(state, plan, plan, true)) return { path: 'restored', takeovers: [] };
    const { commands, takeovers } = slowAdd(state, plan);
    await this.nft.apply(commands);
    return { path: 'slow', takeovers: portTakeovers(takeovers) };
  }

  async del(owner: Owner, plan?: Plan): Promise<CallPath> {
    let missed: unknown;
    if (plan && !hasConditions(plan)) {
      try {
        await this.nft.apply(fastDel(plan), { deletesOnly: true });
        return 'fast';
      } catch (err) {
        // The witness is gone (a takeover, an earlier DEL) or an element is: compare each one instead.
        missed = err;
      }
    }
    const state = await this.nft.readTable();
    if (missed !== undefined) {
      log.debug(`nftables DEL: fast path not taken: ${state
        ? `nft refused the exact deletes (${failureReason(missed)}): the attachment's ownership witness or one of its elements is gone (taken over by a newer ADD, or deleted before); comparing each element`
        : `table ${FAMILY} ${TABLE} does not exist: nothing to delete`}`);
    }
    if (await this.healIfGone(state, plan ?? ANY_SETTINGS)) return 'restored';
    if (state) await this.nft.apply(compareDel(state, owner));
    return 'slow';
  }

  async check(plan: Plan): Promise<void> {
    let state = await this.nft.readTable();
    if (await this.healIfGone(state, plan, plan)) state = await this.nft.readTable();
    const [first] = checkFindings(state, plan);
    if (first) throw new CniError(ErrorCode.Internal, first.msg, first.details);
  }

  async gc(scope: GcScope): Promise<void> {
    let state = await this.nft.readTable();
    if (await this.healIfGone(state, scope.settings ?? ANY_SETTINGS)) state = await this.nft.readTable();
    if (!state) return;
    const valid = validOwnerIds(scope.network, scope.attachments);
    await this.nft.apply(gcCommands(state, { network: scope.network, valid, ...(scope.settings ? { settings: scope.settings } : {}) }));
  }

  async status(): Promise<void> {
    try {
      // Checked at the priority the table already has: `add chain` at another one is refused (EOPNOTSUPP).
      const table = await this.nft.readTable(true);
      // Without elements (terse), only the table and its chains tell whether it is gone.
      if (this.heal && (!table || skeletonDamage(table, ANY_SETTINGS).some((d) => d.startsWith('chain')))) {
        await this.healIfGone(await this.nft.readTable(), ANY_SETTINGS);
      }
      const prio = table?.chains.get('prerouting')?.prio;
      // A table of an older shape: checked as the next ADD would migrate it (its old maps deleted first).
      const { before } = migrateForwardMaps(table);
      await this.nft.apply([...before, ...skeleton(priorityFor(prio === priorityFor(true)))], { check: true });
    } catch (err) {
      const fix = err instanceof CniError && err.details
        ? err.details
        : 'install nftables (apt-get install nftables) and make sure the kernel has nf_tables with nat, fib and maps';
      throw new CniError(ErrorCode.PluginNotAvailable, `nftables backend not usable: ${(err as Error).message}`, fix);
    }
  }

  async damage(plans: readonly Plan[]): Promise<string[]> {
    const settings = settingsOf(plans);
    if (!settings) return [];
    const state = await this.nft.readTable();
    return [...skeletonDamage(state, settings), ...forwardDamage(state, plans)];
  }

  async restore(plans: readonly Plan[], opts: { force?: boolean } = {}): Promise<string[]> {
    const settings = settingsOf(plans);
    if (!settings) return [];
    const state = await this.nft.readTable();
    const damage = [...skeletonDamage(state, settings), ...forwardDamage(state, plans)];
    if (damage.length === 0 && !opts.force) return damage;
    const { commands, takeovers } = restoreCommands(state, plans);
    for (const t of takeovers) log.info(`restore: ${t.set} ${t.key} goes to ${t.to} (newer than ${t.from})`);
    await this.nft.apply(commands);
    return damage;
  }

  /**
   * Self-healing: when the state this call read shows our table (or its skeleton) gone, re-creates the
   * live attachments (and `own`, the call's plan, last) in one transaction. True when it did.
   * `othersOnly`: nothing to heal unless attachments other than `own` are live.
   */
  private async healIfGone(state: TableState | undefined, settings: SkeletonSettings, own?: Plan, othersOnly = false): Promise<boolean> {
    if (!this.heal || !tableGone(state, settings)) return false;
    const live = this.heal();
    const others = own ? live.filter((p) => p.owner.id !== own.owner.id) : live;
    if ((othersOnly ? others : live).length === 0) return false;
    const plans = own ? [...others, own] : live;
    log.warn(`nftables: ${skeletonDamage(state, settings).join('; ')}: restoring ${live.length} attachment(s) from their records`);
    const { commands } = restoreCommands(state, plans);
    await this.nft.apply(commands);
    return true;
  }
}
