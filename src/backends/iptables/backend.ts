/**
 * The iptables backend: a drop-in for the reference plugin's iptables rules (layout in render.ts), applied
 * with one `iptables-restore --noflush` per family and change, in the flavour chosen by flavour.ts.
 *
 * Process calls per verb (nf_tables flavour, no legacy nat table on the node):
 * - ADD: one restore per family (in parallel). The document creates the attachment's chain with `-N` and
 *   re-asserts the shared rules with `-D`+`-A` pairs, so it fails as a whole when the chain already exists
 *   (a re-ADD) or a shared chain or rule is missing. Then the slow path lists the few chains involved
 *   (`-S <chain>`, in parallel) and writes one exact repair document. Nothing lists CNI-HOSTPORT-DNAT or the
 *   table on the fast path, so ADD does not slow down as the node fills up.
 * - DEL with mappings + prevResult: one restore per family deleting exactly the ADD's rules and chain.
 *   If it fails (already deleted, or made by the reference plugin with other entry rules), or without
 *   mappings: `-S CNI-DN-<hash>` (cheap); only when that chain exists are `-S CNI-SN-<hash>` and
 *   CNI-HOSTPORT-DNAT listed, to find the rules jumping to them. A second DEL costs one cheap probe per family.
 * - CHECK: lists our chains and the base chains of the nat table (never the whole table).
 * - GC: lists CNI-HOSTPORT-DNAT, removes the attachments of this network whose container is not valid.
 * - STATUS: `iptables-restore --test` of an empty nat document and `iptables -t nat -S OUTPUT 1`.
 * With the legacy flavour every change rewrites the whole table in the kernel (the x_tables API), so
 * its cost grows with the table whatever we do; the same holds for kube-proxy and the reference plugin.
 */
import { CniError, ErrorCode } from '../../cni/errors.js';
import { CommandError, type Runner, failureReason, run } from '../../host/exec.js';
import { log } from '../../host/log.js';
import type { Family } from '../../net/ip.js';
import type { Owner } from '../../portmap/owner.js';
import { type FamilyPlan, type Plan } from '../../portmap/plan.js';
import type { AddOutcome, Backend, CallPath, GcScope, LiveAttachments } from '../backend.js';
import { natDamage, needsGuard, parseSave, restoreNatDocument } from './restore.js';
import { type Flavour, type FlavourName, detectFlavour } from './flavour.js';
import { FAMILIES, IptablesRunner as Ipt, familyLabel } from './runner.js';
import { canonical, entryKey, sameRule, valueOf } from './parse.js';
import {
  type Args, KUBE_SERVICES, MASQ, OLD_TOP_SNAT, type Rule, SETMARK, TOP_DNAT, addFastDocument, addRepairDocument,
  delFastDocument, dnatChain, dnatRules, entryRules, jumpToDnat, jumpToMasq, masqRule, natDocument, needsMasqChains,
  guardDocument, isOwnMarker, jumpToGuard, guardRule, GUARD, parseEntryComment, setMarkRule, snatChain, targetOf, teardownLines,
} from './render.js';

/** Turns a failure into a CNI error that says which flavour and binary failed. */
function failure(ipt: Ipt, what: string, err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof CommandError && err.kind === 'missing') {
    return new CniError(ErrorCode.PluginNotAvailable, `${what}: ${err.command} not found (iptables flavour ${ipt.flavour})`, 'install iptables (Debian/Ubuntu: apt-get install iptables) or use "backend": "nftables"');
  }
  const detail = err instanceof CommandError ? err.stderr.trim() || err.message : (err as Error).message;
  return new CniError(ErrorCode.Internal, `${what} in the ${ipt.where} failed: ${detail.split('\n').slice(0, 4).join('; ')}`, '');
}

const isFailed = (err: unknown): boolean => err instanceof CommandError && err.kind === 'failed';

/** The path of a call over its families: any restored, else any slow, else fast. */
const overall = (paths: readonly CallPath[]): CallPath =>
  paths.includes('restored') ? 'restored' : paths.includes('slow') ? 'slow' : 'fast';

export class IptablesBackend implements Backend {
  readonly name = 'iptables' as const;
  readonly provesOwnership = false;
  heal?: LiveAttachments;

  constructor(private readonly runner: Runner = run) {}

  /** The live attachments for self-healing, read at most once per call (families run in parallel). */
  private liveOnce(): () => Plan[] {
    let live: Plan[] | undefined;
    return () => (live ??= this.heal?.() ?? []);
  }

  /** Our shared chain or a jump to it is gone, in chains listed by the call (PREROUTING, OUTPUT, CNI-HOSTPORT-DNAT). */
  private static gone(chains: Map<string, Args[] | undefined>): boolean {
    return chains.get(TOP_DNAT) === undefined || ['PREROUTING', 'OUTPUT'].some((c) => !(chains.get(c) ?? []).some((r) => sameRule(r, jumpToDnat())));
  }

  /**
   * Self-healing, once the call's own reads showed our chains or jumps gone: re-creates the live
   * attachments (and `own`, the call's plan, last) of this family in one restore. True when it did.
   * `othersOnly`: nothing to heal unless attachments other than `own` are live.
   */
  private async healFamily(ipt: Ipt, live: () => Plan[], own?: Plan, othersOnly = false): Promise<boolean> {
    const plans = live().filter((p) => p.families.some((f) => f.family === ipt.family));
    const others = own ? plans.filter((p) => p.owner.id !== own.owner.id) : plans;
    if ((othersOnly ? others : plans).length === 0) return false;
    log.warn(`iptables: our chains or jumps are gone from the ${ipt.where}: restoring ${plans.length} attachment(s) from their records`);
    await this.restoreFamily(ipt, own ? [...others, own] : plans);
    return true;
  }

  /** For calls whose own work reads none of our chains: lists the three, only when live attachments of the family exist. True when it healed. */
  private async healIfGone(ipt: Ipt, live: () => Plan[]): Promise<boolean> {
    if (!live().some((p) => p.families.some((f) => f.family === ipt.family))) return false;
    try {
      return IptablesBackend.gone(await ipt.listMany(['PREROUTING', 'OUTPUT', TOP_DNAT])) && (await this.healFamily(ipt, live));
    } catch (err) {
      log.warn(`self-healing in the ${ipt.where} failed: ${(err as Error).message}`);
      return false;
    }
  }

  /** One restore of `plans` in this family; `onlyIfDamaged`: nothing when natDamage finds nothing. Resolves with that damage. */
  private async restoreFamily(ipt: Ipt, plans: readonly Plan[], onlyIfDamaged = false): Promise<string[]> {
    const saved = parseSave(await ipt.save('nat'));
    const damage = natDamage(saved, plans, ipt.family, sameRule);
    if (onlyIfDamaged && damage.length === 0) return damage;
    let doc = restoreNatDocument(saved, plans, ipt.family, sameRule);
    if (!doc) return damage;
    if (needsGuard(plans, ipt.family)) {
      const input = (await ipt.list('INPUT', 'filter')) ?? [];
      doc = guardDocument(input.some((r) => sameRule(r, jumpToGuard()))) + doc;
    }
    await ipt.restore(doc);
    return damage;
  }

  async damage(plans: readonly Plan[]): Promise<string[]> {
    if (plans.length === 0) return [];
    const fl = await this.flavour();
    const out: string[] = [];
    for (const family of FAMILIES) {
      if (!plans.some((p) => p.families.some((f) => f.family === family))) continue;
      const ipt = this.ipt(fl, family);
      out.push(...natDamage(parseSave(await ipt.save('nat')), plans, family, sameRule));
    }
    return out;
  }

  async restore(plans: readonly Plan[], opts: { force?: boolean } = {}): Promise<string[]> {
    const fl = await this.flavour();
    const damage = await Promise.all(
      FAMILIES.filter((f) => plans.some((p) => p.families.some((x) => x.family === f))).map(async (family) => {
        const ipt = this.ipt(fl, family);
        try {
          return await this.restoreFamily(ipt, plans, !opts.force);
        } catch (err) {
          throw failure(ipt, 'restore', err);
        }
      }),
    );
    return damage.flat();
  }

  private flavour(): Promise<Flavour> {
    return detectFlavour(this.runner);
  }

  private ipt(fl: Flavour, family: Family, name: FlavourName | 'unknown' = fl.name): Ipt {
    return Ipt.of(fl, family, name, this.runner);
  }

  async add(plan: Plan): Promise<AddOutcome> {
    const fl = await this.flavour();
    const live = this.liveOnce();
    const paths = await Promise.all(plan.families.map((fp) => this.addFamily(this.ipt(fl, fp.family), plan, fp, live)));
    return { path: overall(paths), takeovers: [] };
  }

  private async addFamily(ipt: Ipt, plan: Plan, fp: FamilyPlan, live: () => Plan[]): Promise<CallPath> {
    // With IPv4 localhost forwarding the guard comes first, in the same restore call.
    const fast = (fp.localhost ? guardDocument(true) : '') + addFastDocument(plan, fp);
    let missed: unknown;
    try {
      await ipt.restore(fast);
      return 'fast';
    } catch (err) {
      if (!isFailed(err)) throw failure(ipt, 'ADD', err);
      missed = err;
    }
    try {
      const chain = dnatChain(plan.owner.network, plan.owner.containerID);
      const names = ['PREROUTING', 'OUTPUT', TOP_DNAT, chain];
      if (needsMasqChains(plan, fp)) names.push('POSTROUTING', SETMARK, MASQ);
      const external = fp.masquerade !== 'none' ? plan.externalSetMarkChain : undefined;
      if (external) names.push(external);
      const chains = await ipt.listMany(names);
      const replaced = chains.get(chain) !== undefined;
      log.debug(`iptables ADD: fast path not taken in the ${ipt.where}: ${
        chains.get(TOP_DNAT) === undefined
          ? `${TOP_DNAT} does not exist yet (the first ADD on this node, or the table was flushed): creating it`
          : replaced
            ? `${chain} exists already (a repeated ADD): replacing its rules`
            : `iptables-restore refused it (${failureReason(missed)}): a shared chain or rule is missing; repairing from the chains as listed`
      }`);
      // The call's own record is already written: healing is for the others (the repair creates what this one needs).
      if (IptablesBackend.gone(chains) && (await this.healFamily(ipt, live, plan, true))) return 'restored';
      if (fp.localhost) {
        const input = (await ipt.list('INPUT', 'filter')) ?? [];
        await ipt.restore(guardDocument(input.some((r) => sameRule(r, jumpToGuard()))));
      }
      if (external && chains.get(external) === undefined) {
        throw new CniError(ErrorCode.Internal, `externalSetMarkChain ${external} does not exist in the ${ipt.where}`, 'create that chain first (it must mark packets for masquerade), or remove externalSetMarkChain');
      }
      const stale = (chains.get(TOP_DNAT) ?? []).filter((r) => targetOf(r) === chain).length;
      if (replaced) log.debug(`ADD replaces the existing rules of ${chain} (${stale} entry rules) for ${plan.owner.network}/${plan.owner.containerID}`);
      await ipt.restore(addRepairDocument(plan, fp, { chains }, sameRule));
      return 'slow';
    } catch (err) {
      throw failure(ipt, 'ADD', err);
    }
  }

  async del(owner: Owner, plan?: Plan): Promise<CallPath> {
    const fl = await this.flavour();
    const fast = new Set<Family>();
    let healed = false;
    const live = this.liveOnce();
    if (plan) {
      await Promise.all(
        plan.families.map(async (fp) => {
          const ipt = this.ipt(fl, fp.family);
          try {
            await ipt.restore(delFastDocument(plan, fp));
            fast.add(fp.family);
          } catch (err) {
            if (!isFailed(err)) throw failure(ipt, 'DEL', err);
            log.debug(`iptables DEL: fast path not taken in the ${ipt.where} (${failureReason(err)}): the attachment's rules are gone or differ (deleted before, or made by the reference plugin); looking them up`);
            // A failed fast DEL is a second DEL or missing rules: look whether ours are all gone.
            if (this.heal && (await this.healIfGone(ipt, live))) healed = true;
          }
        }),
      );
    }
    const flavours = [...new Set<FlavourName | 'unknown'>([fl.name, ...fl.present])];
    const jobs: Array<Promise<void>> = [];
    for (const family of FAMILIES) {
      for (const name of flavours) {
        if (name === fl.name && fast.has(family)) continue;
        jobs.push(this.teardown(this.ipt(fl, family, name), owner));
      }
    }
    await Promise.all(jobs);
    if (healed) return 'restored';
    return plan && plan.families.every((fp) => fast.has(fp.family)) ? 'fast' : 'slow';
  }

  /** Removes the attachment's CNI-DN (and legacy CNI-SN) chain and the rules that jump to them. */
  private async teardown(ipt: Ipt, owner: Owner): Promise<void> {
    const dn = dnatChain(owner.network, owner.containerID);
    const sn = snatChain(owner.network, owner.containerID);
    try {
      const dnRules = await ipt.list(dn);
      // Older reference releases made a CNI-SN chain beside each CNI-DN chain: look for one only then.
      const snRules = dnRules === undefined ? undefined : await ipt.list(sn);
      const chains: string[] = [];
      const referers: Rule[] = [];
      if (dnRules !== undefined) {
        chains.push(dn);
        for (const args of (await ipt.list(TOP_DNAT)) ?? []) referers.push({ chain: TOP_DNAT, args });
      }
      if (snRules !== undefined) {
        chains.push(sn);
        for (const args of (await ipt.list(OLD_TOP_SNAT)) ?? []) referers.push({ chain: OLD_TOP_SNAT, args });
      }
      if (chains.length === 0) return;
      await ipt.restore(natDocument(teardownLines(chains, referers)));
    } catch (err) {
      if (ipt.family === 6 && !(err instanceof CniError)) {
        // A node without IPv6 NAT (no ip6tables nat table) has no IPv6 rules of ours to remove.
        log.debug(`DEL: skipping the ${ipt.where}: ${(err as Error).message}`);
        return;
      }
      throw failure(ipt, 'DEL', err);
    }
  }

  async check(plan: Plan): Promise<void> {
    const fl = await this.flavour();
    const live = this.liveOnce();
    for (const fp of plan.families) await this.checkFamily(this.ipt(fl, fp.family), plan, fp, live);
  }

  private async checkFamily(ipt: Ipt, plan: Plan, fp: FamilyPlan, live?: () => Plan[]): Promise<void> {
    const chain = dnatChain(plan.owner.network, plan.owner.containerID);
    const masq = needsMasqChains(plan, fp);
    const names = ['PREROUTING', 'OUTPUT', TOP_DNAT, chain, ...(masq ? ['POSTROUTING', SETMARK, MASQ] : [])];
    let chains: Map<string, Args[] | undefined>;
    try {
      chains = await ipt.listMany(names);
    } catch (err) {
      throw failure(ipt, 'CHECK', err);
    }
    if (live && IptablesBackend.gone(chains) && (await this.healFamily(ipt, live, plan))) return this.checkFamily(ipt, plan, fp);
    const fix = 'a new ADD (or restarting the pod) reinstalls them';
    const fail = (msg: string, details = fix) => new CniError(ErrorCode.Internal, `${msg} (${ipt.where})`, details);
    const listed = chains.get(chain);
    if (listed === undefined) throw fail(`chain ${chain} of ${plan.owner.network}/${plan.owner.containerID} not found`);
    // Chains made by the reference plugin have no marker; both kinds are checked alike.
    const have = listed.filter((r) => !isOwnMarker(r));
    const want = dnatRules(plan, fp);
    if (have.length !== want.length || have.some((r, i) => canonical(r) !== canonical(want[i]!))) {
      throw fail(`chain ${chain} does not hold the expected rules (${have.length} rules, expected ${want.length})`);
    }
    const entries = chains.get(TOP_DNAT);
    if (entries === undefined) throw fail(`chain ${TOP_DNAT} not found`);
    const keys = new Set(entries.map(entryKey));
    for (const e of entryRules(plan, fp)) {
      if (!keys.has(entryKey(e))) throw fail(`${TOP_DNAT} has no entry rule for ${valueOf(e, '-p')} ports ${valueOf(e, '--destination-ports')} to ${chain}`);
    }
    for (const c of ['PREROUTING', 'OUTPUT']) {
      const list = chains.get(c) ?? [];
      const mine = list.findIndex((r) => sameRule(r, jumpToDnat()));
      if (mine < 0) throw fail(`the jump from ${c} to ${TOP_DNAT} is missing`);
      const kube = list.findIndex((r) => targetOf(r) === KUBE_SERVICES);
      if (plan.afterServices && kube > mine) {
        throw fail(`the jump from ${c} to ${TOP_DNAT} comes before kube-proxy's ${KUBE_SERVICES} jump (afterServices)`, 'a new ADD moves it below KUBE-SERVICES');
      }
    }
    // The guard came with this plugin: attachments the reference plugin made are checked as it would.
    if (fp.localhost && listed.some(isOwnMarker)) {
      const [input, guard] = await Promise.all([ipt.list('INPUT', 'filter'), ipt.list(GUARD, 'filter')]);
      if (!(input ?? []).some((r) => sameRule(r, jumpToGuard())) || !(guard ?? []).some((r) => sameRule(r, guardRule()))) {
        throw fail(`the localhost guard (filter ${GUARD}, jumped to from INPUT) is missing`, 'without it, route_localnet lets neighbours reach 127.0.0.1 services; a new ADD reinstalls it');
      }
    }
    if (masq) {
      if (!(chains.get('POSTROUTING') ?? []).some((r) => sameRule(r, jumpToMasq()))) throw fail(`the jump from POSTROUTING to ${MASQ} is missing`);
      if (!(chains.get(SETMARK) ?? []).some((r) => sameRule(r, setMarkRule(plan.markMasqBit)))) throw fail(`${SETMARK} does not set the mark ${plan.markMasqBit}`);
      if (!(chains.get(MASQ) ?? []).some((r) => sameRule(r, masqRule(plan.markMasqBit)))) throw fail(`${MASQ} does not masquerade the mark of bit ${plan.markMasqBit}`);
    }
  }

  async gc({ network, attachments }: GcScope): Promise<void> {
    const fl = await this.flavour();
    // The reference's chain name has no interface name: a container that is valid with any ifname keeps it.
    const keep = new Set(attachments.map((a) => dnatChain(network, a.containerID)));
    const flavours = [...new Set<FlavourName | 'unknown'>([fl.name, ...fl.present])];
    const live = this.liveOnce();
    if (this.heal) await Promise.all(FAMILIES.map((family) => this.healIfGone(this.ipt(fl, family), live)));
    const jobs: Array<Promise<void>> = [];
    for (const family of FAMILIES) for (const name of flavours) jobs.push(this.gcFamily(this.ipt(fl, family, name), network, keep));
    await Promise.all(jobs);
  }

  private async gcFamily(ipt: Ipt, network: string, keep: ReadonlySet<string>): Promise<void> {
    try {
      const entries = await ipt.list(TOP_DNAT);
      if (!entries) return;
      const stale = new Set<string>();
      for (const r of entries) {
        const target = targetOf(r) ?? '';
        const c = parseEntryComment(valueOf(r, '--comment'));
        if (!target.startsWith('CNI-DN-') || !c) continue;
        // A cut comment still holds the whole network name; validity is decided by the chain's hash.
        if (c.network === network && !keep.has(target)) stale.add(target);
      }
      if (stale.size === 0) return;
      log.info(`GC: removing ${stale.size} stale hostPort chain(s) of network ${network} from the ${ipt.where}`);
      const referers = entries.map((args) => ({ chain: TOP_DNAT, args }));
      await ipt.restore(natDocument(teardownLines([...stale], referers)));
    } catch (err) {
      if (ipt.family === 6 && !(err instanceof CniError)) {
        log.debug(`GC: skipping the ${ipt.where}: ${(err as Error).message}`);
        return;
      }
      throw failure(ipt, 'GC', err);
    }
  }

  async status(): Promise<void> {
    const fl = await this.flavour();
    const errors: string[] = [];
    for (const family of FAMILIES) {
      const ipt = this.ipt(fl, family);
      try {
        await ipt.probe();
      } catch (err) {
        errors.push(`${familyLabel(family)}: ${(err as Error).message.split('\n')[0]}`);
      }
    }
    if (errors.length === FAMILIES.length) {
      throw new CniError(
        ErrorCode.PluginNotAvailable,
        `iptables backend not usable with iptables flavour ${fl.name} (${fl.bin.restore[4]}, ${fl.bin.iptables[4]}; chosen because ${fl.reason}): ${errors.join('; ')}`,
        'install iptables (Debian/Ubuntu: apt-get install iptables), make sure the kernel has the nat table, or use "backend": "nftables"',
      );
    }
    for (const e of errors) log.warn(`iptables flavour ${fl.name}: ${e}`);
    // With live attachments on record, STATUS (which runtimes call periodically) also heals.
    const live = this.liveOnce();
    if (this.heal) await Promise.all(FAMILIES.map((family) => this.healIfGone(this.ipt(fl, family), live)));
  }
}
