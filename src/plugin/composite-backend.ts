/**
 * The backend the verbs see: the configured one, plus (when the configuration names no `backend`) a
 * best-effort search of the other one on DEL and GC. A node may hold rules from before the default
 * changed, such as the reference plugin's iptables rules after its binary was swapped for this one (the
 * reference defaults to iptables, this plugin to nftables). CRI-O's meta hostport manager is the model.
 */
import { log } from '../host/log.js';
import type { AddOutcome, Backend, CallPath, GcScope, LiveAttachments } from '../backends/backend.js';
import type { Owner } from '../portmap/owner.js';
import type { Plan } from '../portmap/plan.js';

async function bestEffort(what: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    log.warn(`${what} failed (ignored: the configured backend succeeded): ${(err as Error).message}`);
  }
}

export class CompositeBackend implements Backend {
  /**
   * `other` loads the other backend (lazily: the common DEL of an attachment this backend can prove
   * its own never loads it); undefined when there is none to search.
   */
  constructor(
    readonly primary: Backend,
    private readonly other?: () => Promise<Backend>,
  ) {}

  get name(): Backend['name'] {
    return this.primary.name;
  }

  get provesOwnership(): boolean {
    return this.primary.provesOwnership;
  }

  /** Self-healing applies to the configured backend only (the other one is only searched). */
  get heal(): LiveAttachments | undefined {
    return this.primary.heal;
  }

  set heal(live: LiveAttachments | undefined) {
    this.primary.heal = live;
  }

  add(plan: Plan): Promise<AddOutcome> {
    return this.primary.add(plan);
  }

  damage(plans: readonly Plan[]): Promise<string[]> {
    return this.primary.damage(plans);
  }

  restore(plans: readonly Plan[], opts?: { force?: boolean }): Promise<string[]> {
    return this.primary.restore(plans, opts);
  }

  check(plan: Plan): Promise<void> {
    return this.primary.check(plan);
  }

  status(): Promise<void> {
    return this.primary.status();
  }

  /**
   * When the configured backend can prove the attachment its own, the other one holds nothing of it
   * and is searched only when the proof fails; otherwise both run at once. The other backend gets no
   * plan: it only removes what it finds. Resolves with the configured backend's path.
   */
  async del(owner: Owner, plan?: Plan): Promise<CallPath> {
    if (!this.other) return this.primary.del(owner, plan);
    const searchOther = async () => {
      const other = await this.other!();
      await bestEffort(`DEL in the ${other.name} backend`, () => other.del(owner));
    };
    if (plan && this.primary.provesOwnership) {
      const path = await this.primary.del(owner, plan);
      if (path !== 'fast') await searchOther();
      return path;
    }
    const [path] = await Promise.all([this.primary.del(owner, plan), searchOther()]);
    return path;
  }

  /** GC in both; only the configured backend rewrites node-wide state from the settings. */
  async gc(scope: GcScope): Promise<void> {
    const other = this.other && (await this.other());
    const { settings: _, ...searchOnly } = scope;
    await Promise.all([
      this.primary.gc(scope),
      other && bestEffort(`GC in the ${other.name} backend`, () => other.gc(searchOnly)),
    ]);
  }
}
