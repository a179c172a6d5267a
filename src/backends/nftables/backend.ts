/**
 * The nftables backend: read our table when needed, decide (reconcile.ts, pure), apply one transaction
 * (runner.ts). Layout and rules: render.ts.
 */
import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Runner } from '../../host/exec.js';
import { log } from '../../host/log.js';
import type { Owner } from '../../portmap/owner.js';
import { type Plan, validOwnerIds } from '../../portmap/plan.js';
import type { Backend, GcScope, LiveAttachments, SkeletonSettings } from '../backend.js';
import type { TableState } from './parse.js';
import { checkFindings, compareDel, fastAdd, fastDel, gcCommands, hasConditions, migrateForwardMaps, slowAdd } from './reconcile.js';
import { priorityFor, skeleton } from './render.js';
import { forwardDamage, restoreCommands, settingsOf, skeletonDamage, tableGone } from './restore.js';
import { NftRunner } from './runner.js';

/** Any settings: what self-healing looks at (the table, base chains and hooks, static rules, ready mark) does not depend on them. */
const ANY_SETTINGS: SkeletonSettings = { afterServices: false, serviceCIDRs: [] };

export class NftablesBackend implements Backend {
  readonly name = 'nftables' as const;
  readonly provesOwnership = true;
  private readonly nft: NftRunner;
  heal?: LiveAttachments;

  constructor(runner?: Runner) {
    this.nft = new NftRunner(runner);
  }

  async add(plan: Plan): Promise<void> {
    if (!hasConditions(plan)) {
      try {
        await this.nft.apply(fastAdd(plan));
        return;
      } catch (err) {
        // No ready skeleton (first ADD, other settings), a key held by another owner, an overlapping subnet.
        log.debug(`nftables ADD fast path failed, reading the table: ${(err as Error).message}`);
      }
    }
    const state = await this.nft.readTable();
    if (await this.healIfGone(state, plan, plan)) return;
    const { commands, takeovers } = slowAdd(state, plan);
    for (const t of takeovers) log.warn(`${t.set} ${t.key} was held by ${t.from}; ${t.to} takes it over`);
    await this.nft.apply(commands);
  }

  async del(owner: Owner, plan?: Plan): Promise<boolean> {
    if (plan && !hasConditions(plan)) {
      try {
        await this.nft.apply(fastDel(plan), { deletesOnly: true });
        return true;
      } catch (err) {
        // The witness is gone (a takeover, an earlier DEL) or an element is: compare each one instead.
        log.debug(`nftables DEL fast path failed, reading the table: ${(err as Error).message}`);
      }
    }
    const state = await this.nft.readTable();
    if (await this.healIfGone(state, plan ?? ANY_SETTINGS)) return false;
    if (state) await this.nft.apply(compareDel(state, owner));
    return false;
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
   */
  private async healIfGone(state: TableState | undefined, settings: SkeletonSettings, own?: Plan): Promise<boolean> {
    if (!this.heal || !tableGone(state, settings)) return false;
    const live = this.heal();
    if (live.length === 0) return false;
    const plans = own ? [...live.filter((p) => p.owner.id !== own.owner.id), own] : live;
    log.warn(`nftables: ${skeletonDamage(state, settings).join('; ')}: restoring ${live.length} attachment(s) from their records`);
    const { commands } = restoreCommands(state, plans);
    await this.nft.apply(commands);
    return true;
  }
}
