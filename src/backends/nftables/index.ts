import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Attachment } from '../../cni/config.js';
import { CniError, ErrorCode } from '../../cni/errors.js';
import { CommandError, onPath, run } from '../../host/exec.js';
import { log } from '../../host/log.js';
import { type Family, cidrContains, parseCidr } from '../../net/ip.js';
import { type Owner, ownerOf, parseOwnerComment } from '../../portmap/owner.js';
import type { Plan } from '../../portmap/plan.js';
import type { Backend, ForwardRow, SkeletonSettings } from '../backend.js';
import { type TableState, parseTable, sameJson } from './parse.js';
import {
  type Command, type Element, FAMILY, TABLE, addElements, baseChains, casDelete, conditionalRules, deleteChains,
  deleteRule, document, mapNames, ownerElements, podnetElements, priorityFor, readyHash,
  replaceElements, requireReady, skeleton, skeletonFor, staticRules, delElements, witnessOf, OWNERS_SET,
} from './render.js';

const NFT_TIMEOUT_MS = 20_000;

/** Linux caps one argument at 128 KiB (MAX_ARG_STRLEN); larger documents go through a file. */
const MAX_ARG_BYTES = 100_000;

/**
 * Runs one nft transaction (all commands or none). The JSON document is passed as nft's argument, or
 * as a private file when large: nft cannot read `-f -` from the socket Node gives a child as stdin.
 */
export async function applyNft(cmds: readonly Command[], opts: NftRunOptions = {}): Promise<void> {
  try {
    await applyNftDocument(cmds, opts);
  } catch (err) {
    throw explainKernelError(err);
  }
}

interface NftRunOptions {
  /** `nft --check`: validate only. */
  check?: boolean;
  /** A transaction of deletes only: answered at commit, see answeredAtCommit. */
  deletesOnly?: boolean;
}

/**
 * A transaction that deletes commits when nft sends it, but nft then closes its netlink socket, and the
 * kernel makes that close wait for an RCU grace period (10-15 ms here) before it frees what was deleted.
 * With `--echo`, nft prints the committed commands before that close (and prints nothing when the
 * transaction fails); with its output unbuffered (coreutils' stdbuf -o0) the echo reaches us at commit,
 * and the call is answered then: nft finishes on its own, with nothing left to change in the kernel.
 * Only for transactions of deletes: with an `add` (or a `list`) in it, --echo makes nft read the whole
 * ruleset first. Without stdbuf, the call waits for nft to exit, as every other transaction does.
 */
function answeredAtCommit(): { prefix: string[]; flags: string[]; settledBy: (out: string) => boolean } | undefined {
  if (!onPath('stdbuf')) return undefined;
  return {
    prefix: ['stdbuf', '-o0'],
    flags: ['--echo'],
    settledBy: (out) => {
      if (!out.endsWith('}')) return false;
      try {
        JSON.parse(out);
        return true;
      } catch {
        return false; // not all of it yet
      }
    },
  };
}

/**
 * The kernel refuses what it does not have (a module missing or not built) with EOPNOTSUPP; so does
 * `add chain` for an existing base chain at another priority, which ADD handles (mismatchedBaseChains).
 */
function explainKernelError(err: unknown): unknown {
  if (err instanceof CommandError && /Operation not supported|Protocol not supported/.test(err.stderr)) {
    return new CniError(
      ErrorCode.PluginNotAvailable,
      `the kernel lacks an nftables feature this plugin needs: ${err.message}`,
      'load the modules (modprobe nf_tables nft_chain_nat nft_nat nft_fib_inet nft_ct nft_masq) or use "backend": "iptables"',
    );
  }
  return err;
}

async function applyNftDocument(cmds: readonly Command[], opts: NftRunOptions): Promise<void> {
  if (cmds.length === 0) return;
  const doc = document(cmds);
  const early = opts.deletesOnly ? answeredAtCommit() : undefined;
  const flags = [...(opts.check ? ['--check'] : []), ...(early?.flags ?? []), '-j'];
  const nft = (args: string[]) => {
    const [command, ...rest] = [...(early?.prefix ?? []), 'nft', ...args];
    return run(command!, rest, { timeoutMs: NFT_TIMEOUT_MS, ...(early ? { settledBy: early.settledBy } : {}) });
  };
  if (Buffer.byteLength(doc) <= MAX_ARG_BYTES) {
    await nft([...flags, doc]);
    return;
  }
  // Synchronous file calls, so that no CNI call loads node:fs/promises (~1.5 ms) for this rare case.
  const dir = mkdtempSync(join(tmpdir(), 'cni-portmap-'));
  try {
    const file = join(dir, 'transaction.json');
    writeFileSync(file, doc, { mode: 0o600 });
    await nft([...flags, '-f', file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Reads our table (`terse`: without set and map elements); undefined when it does not exist. */
export async function readTable(terse = false): Promise<TableState | undefined> {
  try {
    const { stdout } = await run('nft', ['-j', ...(terse ? ['--terse'] : []), 'list', 'table', FAMILY, TABLE], { timeoutMs: NFT_TIMEOUT_MS });
    return parseTable(stdout);
  } catch (err) {
    if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return undefined;
    throw explainKernelError(err);
  }
}

const ownedBy = (owner: Owner) => (comment: string | undefined) => parseOwnerComment(comment)?.id === owner.id;

function describeKey(e: Element): string {
  // Only an object key is a concatenation: a string key (an address) has String.prototype.concat.
  const concat = typeof e.key === 'object' && e.key !== null ? (e.key as { concat?: unknown }).concat : undefined;
  const parts = Array.isArray(concat) ? concat : [e.key];
  return parts.map(String).join(' ');
}

/** Chain names whose hook or priority differ from what `priority` wants. */
function mismatchedBaseChains(state: TableState, priority: number): string[] {
  return baseChains(priority)
    .filter((c) => {
      const have = state.chains.get(c.name);
      return have !== undefined && (have.hook !== c.hook || have.prio !== c.prio || have.type !== c.type);
    })
    .map((c) => c.name);
}

/** A rule's references (sets, jump targets, verdicts): enough to tell our static rules apart, insensitive to how nft prints matches. */
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

const prefixOf = (key: unknown) => (key as { prefix?: { addr: string; len: number } } | null)?.prefix;

/**
 * Pod subnets to add, knowing the table: an interval set refuses overlapping elements ("conflicting
 * intervals specified"), so a subnet inside one already there (another network's larger subnet) is
 * skipped, and subnets inside the new one are replaced by it.
 */
function podnetCommands(state: TableState | undefined, plan: Plan): Command[] {
  const cmds: Command[] = [];
  for (const e of podnetElements(plan)) {
    const p = prefixOf(e.key)!;
    const mine = parseCidr(`${p.addr}/${p.len}`);
    const existing = (state?.elements ?? []).filter((x) => x.set === e.set && prefixOf(x.key));
    const cidrOf = (x: Element) => parseCidr(`${prefixOf(x.key)!.addr}/${prefixOf(x.key)!.len}`);
    if (existing.some((x) => cidrOf(x).prefixLength <= mine.prefixLength && cidrContains(cidrOf(x), mine.network))) continue;
    for (const x of existing) {
      if (cidrContains(mine, cidrOf(x).network)) cmds.push({ delete: { element: { family: FAMILY, table: TABLE, name: e.set, elem: [x.key] } } });
    }
    cmds.push(...addElements([e]));
  }
  return cmds;
}

export class NftablesBackend implements Backend {
  readonly name = 'nftables' as const;

  async add(plan: Plan): Promise<void> {
    const priority = priorityFor(plan.afterServices);
    const ready = readyHash(priority, plan.serviceCIDRs);
    const hasConditions = plan.families.some((f) => f.conditions);
    if (!hasConditions) {
      // Fast path: only additions, valid only on a ready skeleton (see READY_MAP in render.ts).
      try {
        await applyNft([requireReady(ready), ...addElements(podnetElements(plan)), ...addElements(ownerElements(plan))]);
        return;
      } catch (err) {
        // No ready skeleton (first ADD, other settings), a key held by another owner, an overlapping subnet.
        log.debug(`nftables ADD fast path failed, reading the table: ${(err as Error).message}`);
      }
    }
    const state = await readTable();
    const cmds: Command[] = [];
    if (state) cmds.push(...deleteChains(mismatchedBaseChains(state, priority)));
    cmds.push(...skeletonFor(plan), ...podnetCommands(state, plan));
    const overtaken = new Set<string>();
    for (const e of ownerElements(plan)) {
      const current = state?.elements.find((x) => x.set === e.set && sameJson(x.key, e.key));
      if (!current) cmds.push(...addElements([e]));
      else if (sameJson(current.value, e.value) && current.comment === e.comment) continue;
      else {
        const previous = parseOwnerComment(current.comment)?.id;
        if (previous !== plan.owner.id) {
          log.warn(`${e.set} ${describeKey(e)} was held by ${current.comment ?? 'an unknown owner'}; ${plan.owner.comment} takes it over`);
          if (previous) overtaken.add(previous);
        }
        cmds.push(...replaceElements([e]));
      }
    }
    // The previous owners' DELs must not delete blindly any more (see OWNERS_SET).
    cmds.push(...casDelete([...overtaken].map((id) => witnessOf(id))));
    for (const r of state?.rules ?? []) {
      if (r.chain === 'conditional' && ownedBy(plan.owner)(r.comment)) cmds.push(deleteRule('conditional', r.handle));
    }
    cmds.push(...conditionalRules(plan));
    await applyNft(cmds);
  }

  async del(owner: Owner, plan?: Plan): Promise<boolean> {
    if (plan && !plan.families.some((f) => f.conditions)) {
      try {
        // Deletes only, guarded by the owner's witness (see OWNERS_SET): answered at commit.
        await applyNft(delElements(ownerElements(plan)), { deletesOnly: true });
        return true;
      } catch (err) {
        // The witness is gone (a takeover, an earlier DEL) or an element is: compare each one instead.
        log.debug(`nftables DEL fast path failed, reading the table: ${(err as Error).message}`);
      }
    }
    const state = await readTable();
    if (!state) return false;
    const mine = ownedBy(owner);
    await applyNft([
      ...casDelete(state.elements.filter((e) => mine(e.comment))),
      ...state.rules.filter((r) => r.chain === 'conditional' && mine(r.comment)).map((r) => deleteRule(r.chain, r.handle)),
    ]);
    return false;
  }

  async check(plan: Plan): Promise<void> {
    const state = await readTable();
    const fix = 'a new ADD (or restarting the pod) reinstalls them';
    if (!state) throw new CniError(ErrorCode.Internal, `nftables table ${FAMILY} ${TABLE} not found`, `the hostPort rules are gone (was the ruleset flushed?); ${fix}`);
    const priority = priorityFor(plan.afterServices);
    for (const c of baseChains(priority)) {
      const have = state.chains.get(c.name);
      if (!have) throw new CniError(ErrorCode.Internal, `chain ${c.name} missing from table ${FAMILY} ${TABLE}`, fix);
      if (have.hook !== c.hook || have.prio !== c.prio) {
        throw new CniError(ErrorCode.Internal, `chain ${c.name} hooks ${have.hook} at priority ${have.prio}, expected ${c.hook} at ${c.prio}`, fix);
      }
    }
    for (const [chain, rules] of Object.entries(staticRules())) {
      const have = state.rules.filter((r) => r.chain === chain).map((r) => signature(r.expr));
      const want = rules.map(signature);
      if (!sameJson(have, want)) {
        throw new CniError(ErrorCode.Internal, `chain ${chain} of table ${FAMILY} ${TABLE} does not hold the expected rules`, fix);
      }
    }
    // The forwarding elements (not the witness: without it a DEL only takes its comparing path).
    for (const e of ownerElements(plan).filter((x) => x.set !== OWNERS_SET)) {
      const current = state.elements.find((x) => x.set === e.set && sameJson(x.key, e.key));
      if (!current) throw new CniError(ErrorCode.Internal, `missing hostPort entry ${describeKey(e)} in ${e.set}`, fix);
      if (!sameJson(current.value, e.value) || parseOwnerComment(current.comment)?.id !== plan.owner.id) {
        throw new CniError(ErrorCode.Internal, `hostPort entry ${describeKey(e)} in ${e.set} belongs to ${current.comment ?? 'another owner'}`, `another attachment took the port; ${fix}`);
      }
    }
    const wantConditional = conditionalRules(plan).length;
    const haveConditional = state.rules.filter((r) => r.chain === 'conditional' && ownedBy(plan.owner)(r.comment)).length;
    if (wantConditional !== haveConditional) {
      throw new CniError(ErrorCode.Internal, `expected ${wantConditional} conditional rules for this attachment, found ${haveConditional}`, fix);
    }
  }

  async gc(network: string, valid: ReadonlySet<string>, _attachments?: readonly Attachment[], settings?: SkeletonSettings): Promise<void> {
    const state = await readTable();
    if (!state) return;
    // GC reads and deletes anyway: it also rewrites the skeleton (a chain flushed by hand comes back).
    const skeletonCmds = settings
      ? [...deleteChains(mismatchedBaseChains(state, priorityFor(settings.afterServices))), ...skeletonFor(settings)]
      : [];
    const networkId = ownerOf(network, '', '').networkId;
    const stale = (comment: string | undefined): boolean => {
      const p = parseOwnerComment(comment);
      return p !== undefined && p.networkId === networkId && !valid.has(p.id);
    };
    const staleElements = state.elements.filter((e) => stale(e.comment));
    const remaining = state.elements.filter((e) => !staleElements.includes(e));
    const cmds: Command[] = [
      ...skeletonCmds,
      ...casDelete(staleElements),
      ...state.rules.filter((r) => r.chain === 'conditional' && stale(r.comment)).map((r) => deleteRule(r.chain, r.handle)),
    ];
    // A pod subnet stays a hairpin source while any pod of ours in it still needs masquerading.
    for (const f of [4, 6] as const satisfies Family[]) {
      const m = mapNames(f);
      const pods = remaining.filter((e) => e.set === m.snat).map((e) => String(e.key));
      for (const net of remaining.filter((e) => e.set === m.podnets)) {
        const p = (net.key as { prefix?: { addr: string; len: number } }).prefix;
        if (!p) continue;
        const cidr = parseCidr(`${p.addr}/${p.len}`);
        if (!pods.some((ip) => cidrContains(cidr, ip))) cmds.push({ delete: { element: { family: FAMILY, table: TABLE, name: m.podnets, elem: [net.key] } } });
      }
    }
    await applyNft(cmds);
  }

  async status(): Promise<void> {
    try {
      // Checked at the priority the table already has: `add chain` at another one is refused (EOPNOTSUPP).
      const prio = (await readTable(true))?.chains.get('prerouting')?.prio;
      await applyNft(skeleton(priorityFor(prio === priorityFor(true))), { check: true });
    } catch (err) {
      const fix = err instanceof CniError && err.details ? err.details : 'install nftables (apt-get install nftables) and make sure the kernel has nf_tables with nat, fib and maps';
      throw new CniError(ErrorCode.PluginNotAvailable, `nftables backend not usable: ${(err as Error).message}`, fix);
    }
  }
}

/** Forwards found in our table (pure). */
export function rowsOf(state: TableState): ForwardRow[] {
  const rows: ForwardRow[] = [];
  const who = (comment: string | undefined) => {
    const p = parseOwnerComment(comment);
    if (!p) return {};
    return {
      ownerId: p.id,
      ...(p.network !== undefined ? { network: p.network } : {}),
      ...(p.containerID !== undefined ? { containerID: p.containerID } : {}),
      ...(p.ifname !== undefined ? { ifname: p.ifname } : {}),
    };
  };
  for (const f of [4, 6] as const) {
    const m = mapNames(f);
    for (const [addrMap, portMap, withHostIP] of [
      [m.hostportsAddr, m.hostportsPort, false],
      [m.hostipportsAddr, m.hostipportsPort, true],
    ] as const) {
      for (const e of state.elements) {
        if (e.set !== addrMap) continue;
        const port = state.elements.find((p) => p.set === portMap && sameJson(p.key, e.key));
        const key = ((e.key as { concat?: unknown[] }).concat ?? []) as Array<string | number>;
        const [hostIP, protocol, hostPort] = withHostIP ? key : [undefined, ...key];
        rows.push({
          backend: 'nftables',
          origin: 'portmap-ts',
          family: f,
          protocol: String(protocol),
          ...(hostIP !== undefined ? { hostIP: String(hostIP) } : {}),
          hostPort: Number(hostPort),
          podIP: String(e.value),
          containerPort: Number(port?.value),
          ...who(e.comment),
        });
      }
    }
  }
  for (const r of state.rules) {
    if (r.chain !== 'conditional') continue;
    const dnat = r.expr.find((x) => 'dnat' in x)?.dnat as { family?: string; addr?: string; port?: number } | undefined;
    let proto: string | undefined;
    let port: number | undefined;
    let hostIP: string | undefined;
    for (const x of r.expr) {
      const mt = (x as { match?: { left?: { payload?: { field?: string; protocol?: string }; meta?: { key?: string } }; right?: unknown; op?: string } }).match;
      if (!mt || mt.op !== '==') continue;
      if (mt.left?.payload?.field === 'dport') {
        port = Number(mt.right);
        if (mt.left.payload.protocol && mt.left.payload.protocol !== 'th') proto = mt.left.payload.protocol;
      }
      if (mt.left?.meta?.key === 'l4proto') proto = String(mt.right);
      if (mt.left?.payload?.field === 'daddr' && typeof mt.right === 'string') hostIP = mt.right;
    }
    if (!dnat?.addr || port === undefined) continue;
    rows.push({
      backend: 'nftables',
      origin: 'portmap-ts',
      family: dnat.family === 'ip6' ? 6 : 4,
      protocol: proto ?? '?',
      ...(hostIP ? { hostIP } : {}),
      hostPort: port,
      podIP: dnat.addr,
      containerPort: Number(dnat.port),
      conditional: true,
      ...who(r.comment),
    });
  }
  return rows;
}
