/** A fake Backend for verb-level unit tests: records each call, and fails where told. */
import type { AddOutcome, Backend, CallPath, GcScope, LiveAttachments } from '../../src/backends/backend.js';
import type { BackendName } from '../../src/portmap/config.js';
import type { Owner } from '../../src/portmap/owner.js';
import type { Plan } from '../../src/portmap/plan.js';

export type FakeCall =
  | { verb: 'add' | 'check'; plan: Plan }
  | { verb: 'del'; owner: Owner; plan?: Plan }
  | { verb: 'gc'; scope: GcScope }
  | { verb: 'status' }
  | { verb: 'damage' | 'restore'; plans: readonly Plan[] };

export class FakeBackend implements Backend {
  readonly calls: FakeCall[] = [];
  /** Verbs that reject, with this error. */
  failing = new Map<FakeCall['verb'], Error>();
  /** Whether del() proves the attachment its own: it then resolves 'fast' (else delPath). */
  proves = false;
  /** What del() resolves with when it does not prove ownership. */
  delPath: CallPath = 'slow';
  /** What add() resolves with. */
  added: AddOutcome = { path: 'fast', takeovers: [] };
  /** What damage() resolves with. */
  damaged: string[] = [];
  heal?: LiveAttachments;

  constructor(
    readonly name: BackendName,
    readonly provesOwnership = name === 'nftables',
  ) {}

  private async record(call: FakeCall): Promise<void> {
    this.calls.push(call);
    const err = this.failing.get(call.verb);
    if (err) throw err;
  }

  async add(plan: Plan): Promise<AddOutcome> {
    await this.record({ verb: 'add', plan });
    return this.added;
  }

  async del(owner: Owner, plan?: Plan): Promise<CallPath> {
    await this.record({ verb: 'del', owner, ...(plan ? { plan } : {}) });
    return this.proves ? 'fast' : this.delPath;
  }

  check(plan: Plan): Promise<void> {
    return this.record({ verb: 'check', plan });
  }

  gc(scope: GcScope): Promise<void> {
    return this.record({ verb: 'gc', scope });
  }

  status(): Promise<void> {
    return this.record({ verb: 'status' });
  }

  async damage(plans: readonly Plan[]): Promise<string[]> {
    await this.record({ verb: 'damage', plans });
    return this.damaged;
  }

  async restore(plans: readonly Plan[], opts: { force?: boolean } = {}): Promise<string[]> {
    await this.record({ verb: 'restore', plans });
    return opts.force || this.damaged.length > 0 ? this.damaged : [];
  }

  verbs(): string[] {
    return this.calls.map((c) => c.verb);
  }
}
