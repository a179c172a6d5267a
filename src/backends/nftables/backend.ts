/**
 * The nftables backend: read our table when needed, decide (reconcile.ts, pure), apply one transaction
 * (runner.ts). Layout and rules: render.ts.
 */
import { CniError, ErrorCode } from '../../cni/errors.js';
import type { Runner } from '../../host/exec.js';
import { log } from '../../host/log.js';
import type { Owner } from '../../portmap/owner.js';
import { type Plan, validOwnerIds } from '../../portmap/plan.js';
import type { Backend, GcScope } from '../backend.js';
import { checkFindings, compareDel, fastAdd, fastDel, gcCommands, hasConditions, migrateForwardMaps, slowAdd } from './reconcile.js';
import { priorityFor, skeleton } from './render.js';
import { NftRunner } from './runner.js';

export class NftablesBackend implements Backend {
  readonly name = 'nftables' as const;
  readonly provesOwnership = true;
  private readonly nft: NftRunner;

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
    const { commands, takeovers } = slowAdd(await this.nft.readTable(), plan);
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
    if (state) await this.nft.apply(compareDel(state, owner));
    return false;
  }

  async check(plan: Plan): Promise<void> {
    const [first] = checkFindings(await this.nft.readTable(), plan);
    if (first) throw new CniError(ErrorCode.Internal, first.msg, first.details);
  }

  async gc(scope: GcScope): Promise<void> {
    const state = await this.nft.readTable();
    if (!state) return;
    const valid = validOwnerIds(scope.network, scope.attachments);
    await this.nft.apply(gcCommands(state, { network: scope.network, valid, ...(scope.settings ? { settings: scope.settings } : {}) }));
  }

  async status(): Promise<void> {
    try {
      // Checked at the priority the table already has: `add chain` at another one is refused (EOPNOTSUPP).
      const table = await this.nft.readTable(true);
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
}
