/**
 * Pure rendering of plans into iptables-restore text (one document per family, applied with
 * `iptables-restore --noflush`). Nothing here runs a process.
 *
 * Layout: the reference plugin's, rule for rule, so that attachments made by either plugin are seen,
 * checked, deleted and garbage-collected by the other (the reference plugin's iptables layout):
 *
 *   nat PREROUTING:  ... (kube-proxy's -j KUBE-SERVICES at position 1)
 *                    -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT            (appended: after KUBE-SERVICES)
 *   nat OUTPUT:      the same jump
 *   nat POSTROUTING: -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ  (position 1)
 *   CNI-HOSTPORT-SETMARK: -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000
 *   CNI-HOSTPORT-MASQ:    -m mark --mark 0x2000/0x2000 -j MASQUERADE
 *   CNI-HOSTPORT-DNAT:    one multiport entry rule per attachment, protocol and 15 ports, newest first:
 *       -m comment --comment "dnat name: \"<net>\" id: \"<id>\"" -m multiport -p tcp --destination-ports 8080,8081 [conditions] -j CNI-DN-<hash>
 *   CNI-DN-<hash> (one per attachment; hash = sha512(network name + container id), as the reference):
 *       -d <serviceCIDR> -j RETURN                                   (serviceCIDRs of the family, first)
 *       -p tcp --dport 8080 [-d hostIP] -s <pod subnet> -j CNI-HOSTPORT-SETMARK    (hairpin; 0.0.0.0/0 with masqAll)
 *       -p tcp --dport 8080 [-d hostIP] -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK       (IPv4 localhost)
 *       -p tcp --dport 8080 [-d hostIP] -j DNAT --to-destination <pod>:80
 *
 * Deliberate differences from the reference:
 * - Entry rules are inserted at the top of CNI-HOSTPORT-DNAT (`-I 1`), so the newest owner of a port wins
 *   over a stale one (the reference appends: the first-added rule wins, containernetworking/plugins#1267).
 * - serviceCIDRs RETURN rules sit at the top of each attachment's CNI-DN chain, not of CNI-HOSTPORT-DNAT: the
 *   entry rules are inserted at position 1, so rules "at the top of CNI-HOSTPORT-DNAT" would not stay there
 *   without listing and rewriting that chain on every ADD (which grows with the node). A RETURN in the DN
 *   chain comes before its mark rules, so Service traffic is neither DNATed nor marked for masquerade.
 * - Entry-rule port lists hold only the ports of the family (the reference also lists other-family ones).
 * - A comment longer than 255 characters is cut to 252 + "..." (iptables' limit is 255).
 *
 * Atomicity and idempotency without listing (see index.ts): an ADD is one restore per family that creates
 * the attachment's chain with `-N` (fails if it exists: a re-ADD), inserts the entry rules and re-asserts
 * every shared rule with a `-D` + `-A` pair (fails if the rule is missing). Any failure rejects the whole
 * document, and the backend falls back to reading the few chains involved and writing an exact repair.
 */
import { createHash } from 'node:crypto';
import { CniError, ErrorCode } from '../../cni/errors.js';
import { type Cidr, type Family, addrPort, cidrText } from '../../net/ip.js';
import type { FamilyPlan, Plan } from '../../portmap/plan.js';
import { type PortSpan, compactForwards, multiportChunks } from '../../portmap/ranges.js';

export const TOP_DNAT = 'CNI-HOSTPORT-DNAT';
export const SETMARK = 'CNI-HOSTPORT-SETMARK';
export const MASQ = 'CNI-HOSTPORT-MASQ';
/** The reference's SNAT chain before v0.7: only torn down. */
export const OLD_TOP_SNAT = 'CNI-HOSTPORT-SNAT';
export const KUBE_SERVICES = 'KUBE-SERVICES';
/** The per-attachment DNAT chains: DNAT_CHAIN_PREFIX + hash (see chainName). */
export const DNAT_CHAIN_PREFIX = 'CNI-DN-';
/** The priority of iptables' nat hooks (NF_IP_PRI_NAT_DST): the nat table runs there, whatever the flavour. */
export const NAT_HOOK_PRIORITY = -100;
/** iptables' multiport match takes at most 15 ports. */
export const MULTIPORT_MAX = 15;
/** iptables refuses a comment longer than this. */
export const IPT_COMMENT_MAX = 255;

/** A rule without its `-A CHAIN`: iptables arguments, one per word. */
export type Args = string[];

export interface Rule {
  chain: string;
  args: Args;
}

/** ("CNI-" + prefix + hex(sha512(name + containerID)))[:28]: the reference's per-attachment chain names. */
export function chainName(prefix: 'DN-' | 'SN-', network: string, containerID: string): string {
  const key = `${prefix}${network}\0${containerID}`;
  let name = chainNames.get(key);
  if (name === undefined) {
    const hash = createHash('sha512').update(network + containerID).digest('hex');
    name = `CNI-${prefix}${hash}`.slice(0, 28);
    // A restore of 1,000 attachments asks for each name several times; a CNI call for one or two.
    if (chainNames.size > 10_000) chainNames.clear();
    chainNames.set(key, name);
  }
  return name;
}

const chainNames = new Map<string, string>();

export const dnatChain = (network: string, containerID: string): string => chainName('DN-', network, containerID);
export const snatChain = (network: string, containerID: string): string => chainName('SN-', network, containerID);

/** The reference's entry-rule comment. */
export function entryComment(network: string, containerID: string): string {
  const c = `dnat name: "${network}" id: "${containerID}"`;
  return c.length > IPT_COMMENT_MAX ? `${c.slice(0, IPT_COMMENT_MAX - 3)}...` : c;
}

/** Reads an entry-rule comment back; `truncated` when the id was cut short. */
export function parseEntryComment(comment: string | undefined): { network: string; containerID: string; truncated: boolean } | undefined {
  const m = /^dnat name: "([^"]*)" id: "([^"]*)"$/.exec(comment ?? '');
  if (m) return { network: m[1]!, containerID: m[2]!, truncated: false };
  const t = /^dnat name: "([^"]*)" id: "([^"]*)\.\.\.$/.exec(comment ?? '');
  if (t) return { network: t[1]!, containerID: t[2]!, truncated: true };
  return undefined;
}

/** The mark of markMasqBit, as the reference prints it (`%#x/%#x`). */
export function markOf(bit: number): string {
  const v = `0x${(2 ** bit).toString(16)}`;
  return `${v}/${v}`;
}

export const jumpToDnat = (): Args => ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', TOP_DNAT];
export const jumpToMasq = (): Args => ['-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', MASQ];
export const setMarkRule = (bit: number): Args => ['-m', 'comment', '--comment', 'CNI portfwd masquerade mark', '-j', 'MARK', '--set-xmark', markOf(bit)];
export const masqRule = (bit: number): Args => ['-m', 'mark', '--mark', markOf(bit), '-j', 'MASQUERADE'];

/** Whether a plan family needs CNI-HOSTPORT-SETMARK / -MASQ (snat without externalSetMarkChain). */
export const needsMasqChains = (plan: Plan, fp: FamilyPlan): boolean => fp.masquerade !== 'none' && !plan.externalSetMarkChain;

/** Short options that would change the command or its target (getopt lets them be clustered: -vjDROP). */
const FORBIDDEN_SHORT = new Set('jgAIDNXFtRPEZCSLMhVwW'.split(''));
/** Long options with the same effect; getopt accepts any unambiguous prefix, so prefixes are refused too. */
const FORBIDDEN_LONG = [
  '--jump', '--goto', '--append', '--insert', '--delete', '--new-chain', '--delete-chain', '--flush', '--table',
  '--replace', '--policy', '--rename-chain', '--zero', '--check', '--list', '--list-rules', '--modprobe', '--help',
  '--version', '--wait', '--wait-interval', '--line-numbers',
];

/**
 * Refuses condition tokens that could break out of the entry rule: options that name a target, a chain,
 * a table or another command. config.ts already refused quotes, whitespace, ";" and "#", so a token cannot
 * start a new restore line.
 */
export function validateConditions(tokens: readonly string[], field: string): void {
  for (const t of tokens) {
    let bad = false;
    if (t.startsWith('--')) {
      bad = t.length > 2 && FORBIDDEN_LONG.some((o) => o.startsWith(t.split('=')[0]!));
      if (t === '--') bad = true;
    } else if (t.startsWith('-') && t.length > 1) {
      bad = [...t.slice(1)].some((c) => FORBIDDEN_SHORT.has(c));
    } else if (t.startsWith('*') || t.startsWith(':') || t === 'COMMIT') {
      bad = true;
    }
    if (bad) {
      throw new CniError(
        ErrorCode.InvalidConfig,
        `invalid value for ${field}: the token ${JSON.stringify(t)} is not allowed`,
        'conditions may only add matches (e.g. "!", "-d", "192.0.2.0/24", "-m", "..."); targets, chains, tables and commands are refused',
      );
    }
  }
}

/** Per protocol (sorted): the single host ports in input order, and the spans (portmap/ranges.ts). */
function protocolsOf(fp: FamilyPlan): Map<string, { ports: number[]; spans: PortSpan[] }> {
  const { singles, spans } = compactForwards(fp.forwards);
  const byProto = new Map<string, { ports: number[]; spans: PortSpan[]; seen: Set<number> }>();
  const of = (p: string) => {
    let e = byProto.get(p);
    if (!e) byProto.set(p, (e = { ports: [], spans: [], seen: new Set() }));
    return e;
  };
  for (const f of singles) {
    const e = of(f.protocol);
    if (!e.seen.has(f.hostPort)) e.ports.push(f.hostPort);
    e.seen.add(f.hostPort);
  }
  for (const s of spans) of(s.protocol).spans.push(s);
  return new Map([...byProto.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The multiport entry rules of one attachment and family, in CNI-HOSTPORT-DNAT order. */
export function entryRules(plan: Plan, fp: FamilyPlan): Args[] {
  const chain = dnatChain(plan.owner.network, plan.owner.containerID);
  const comment = entryComment(plan.owner.network, plan.owner.containerID);
  const conditions = fp.conditions ?? [];
  validateConditions(conditions, fp.family === 4 ? 'conditionsV4' : 'conditionsV6');
  const out: Args[] = [];
  for (const [proto, { ports, spans }] of protocolsOf(fp)) {
    // A range `a:b` counts as two of multiport's fifteen ports.
    for (const chunk of multiportChunks(ports, spans, MULTIPORT_MAX)) {
      out.push(['-m', 'comment', '--comment', comment, '-m', 'multiport', '-p', proto, '--destination-ports', chunk.join(','), ...conditions, '-j', chain]);
    }
  }
  return out;
}

const anyAddress = (f: Family): string => (f === 4 ? '0.0.0.0/0' : '::/0');

/**
 * The first rule of every CNI-DN chain this plugin writes: a comment and no target, so it changes
 * nothing for packets. It tells `portmap list` our chains from the reference plugin's (whose layout is
 * otherwise identical), and the reference's CHECK (`iptables -C` per rule) and DEL (flush and delete the
 * chain) are not affected by it.
 */
export const OWN_MARKER: Args = ['-m', 'comment', '--comment', 'portmap-ts'];
export const isOwnMarker = (args: Args): boolean => args.length === OWN_MARKER.length && args.every((w, i) => w === OWN_MARKER[i]);

/** The rules of the attachment's CNI-DN chain: Service RETURNs, then per forward the mark rules, then DNAT. */
export function dnatRules(plan: Plan, fp: FamilyPlan): Args[] {
  const out: Args[] = [];
  for (const c of plan.serviceCIDRs) if (c.family === fp.family) out.push(['-d', cidrText(c), '-j', 'RETURN']);
  const mark = plan.externalSetMarkChain ?? SETMARK;
  const { singles, spans } = compactForwards(fp.forwards);
  // Singles in input order (the reference's rules), then spans: `--dport a:b`, DNAT to the address alone
  // (the port stays), so a range publish is three rules, not three per port.
  const items = [
    ...singles.map((f) => ({ protocol: f.protocol, ports: String(f.hostPort), hostIP: f.hostIP, to: addrPort(fp.pod.address, f.containerPort) })),
    ...spans.map((s) => ({ protocol: s.protocol, ports: `${s.first}:${s.last}`, hostIP: s.hostIP, to: fp.pod.address })),
  ];
  for (const f of items) {
    const base = ['-p', f.protocol, '--dport', f.ports, ...(f.hostIP ? ['-d', f.hostIP] : [])];
    if (fp.masquerade !== 'none') {
      out.push([...base, '-s', fp.masquerade === 'all' ? anyAddress(fp.family) : podSource(fp.pod), '-j', mark]);
    }
    if (fp.localhost) out.push([...base, '-s', '127.0.0.1', '-j', mark]);
    out.push([...base, '-j', 'DNAT', '--to-destination', f.to]);
  }
  return out;
}

/** The hairpin source: the pod's whole subnet (as the reference does since containernetworking/plugins#469). */
const podSource = (pod: Cidr): string => cidrText(pod);

/** Quotes one word for iptables-restore (double quotes, backslash escapes), only when needed. */
export function quote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_.:/,!=<>{}[\]@*+%^~-]+$/.test(word)) return word;
  return `"${word.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export const line = (op: '-A' | '-D' | '-I', chain: string, args: Args, position?: number): string =>
  [op, chain, ...(position !== undefined ? [String(position)] : []), ...args.map(quote)].join(' ');

/** Wraps lines into a `--noflush` restore document for the nat table. */
export const natDocument = (lines: readonly string[]): string => `*nat\n${lines.join('\n')}${lines.length ? '\n' : ''}COMMIT\n`;

/**
 * The localhost guard (filter table, IPv4): route_localnet=1, which 127.0.0.1:hostPort needs, would let
 * hosts on that link reach the node's 127.0.0.1-only services (CVE-2020-8558). This drops packets to
 * 127.0.0.0/8 from any interface but lo unless they belong to a known connection or were DNATed, as
 * kube-proxy's KUBE-FIREWALL does.
 */
export const GUARD = 'CNI-HOSTPORT-GUARD';
export const guardRule = (): Args => ['!', '-i', 'lo', '-d', '127.0.0.0/8', '-m', 'comment', '--comment', 'CNI portfwd localhost guard', '-m', 'conntrack', '!', '--ctstate', 'RELATED,ESTABLISHED,DNAT', '-j', 'DROP'];
export const jumpToGuard = (): Args => ['-j', GUARD];

/**
 * The guard as a filter-table document: the chain line creates the chain or empties it, so its content
 * is always exact. `jumpPresent`: the INPUT jump exists and is re-asserted at position 1 (the document
 * fails when it does not: the caller then lists INPUT); false: the jump is inserted.
 */
export function guardDocument(jumpPresent: boolean): string {
  const lines = [`:${GUARD} - [0:0]`, line('-A', GUARD, guardRule())];
  if (jumpPresent) lines.push(line('-D', 'INPUT', jumpToGuard()));
  lines.push(line('-I', 'INPUT', jumpToGuard(), 1));
  return `*filter\n${lines.join('\n')}\nCOMMIT\n`;
}

/** Inserts rules at the top of a chain keeping their order (each goes in at 1, last first). */
const insertAtTop = (chain: string, rules: readonly Args[]): string[] => [...rules].reverse().map((r) => line('-I', chain, r, 1));

/**
 * Re-asserts the shared rules in place: each is deleted and added back in the same transaction, so the
 * document fails (and nothing is applied) when one is missing. The PREROUTING/OUTPUT jumps go back at the
 * end, after KUBE-SERVICES; the POSTROUTING jump back at position 1.
 */
export function sharedRefresh(plan: Plan, fp: FamilyPlan): string[] {
  const out: string[] = [];
  for (const chain of ['PREROUTING', 'OUTPUT']) out.push(line('-D', chain, jumpToDnat()), line('-A', chain, jumpToDnat()));
  if (needsMasqChains(plan, fp)) {
    out.push(
      line('-D', SETMARK, setMarkRule(plan.markMasqBit)), line('-A', SETMARK, setMarkRule(plan.markMasqBit)),
      line('-D', MASQ, masqRule(plan.markMasqBit)), line('-A', MASQ, masqRule(plan.markMasqBit)),
      line('-D', 'POSTROUTING', jumpToMasq()), line('-I', 'POSTROUTING', jumpToMasq(), 1),
    );
  }
  return out;
}

/** ADD fast path: the attachment's chain must not exist yet, the shared chains and rules must. */
export function addFastDocument(plan: Plan, fp: FamilyPlan): string {
  const chain = dnatChain(plan.owner.network, plan.owner.containerID);
  return natDocument([
    `-N ${chain}`,
    line('-A', chain, OWN_MARKER),
    ...dnatRules(plan, fp).map((r) => line('-A', chain, r)),
    ...insertAtTop(TOP_DNAT, entryRules(plan, fp)),
    ...sharedRefresh(plan, fp),
  ]);
}

/** What the ADD slow path found in the kernel (undefined: the chain does not exist). */
export interface AddState {
  chains: Map<string, Args[] | undefined>;
}

/**
 * ADD slow path: creates what is missing, replaces the attachment's chain content and entry rules, and
 * moves a PREROUTING/OUTPUT jump that sits above KUBE-SERVICES below it. `same` compares two rules.
 */
export function addRepairDocument(plan: Plan, fp: FamilyPlan, state: AddState, same: (a: Args, b: Args) => boolean): string {
  return natDocument(addRepairLines(plan, fp, state, same));
}

/** The lines of addRepairDocument (restore.ts joins those of many plans into one document). */
export function addRepairLines(plan: Plan, fp: FamilyPlan, state: AddState, same: (a: Args, b: Args) => boolean): string[] {
  const chain = dnatChain(plan.owner.network, plan.owner.containerID);
  const has = (c: string) => state.chains.get(c) !== undefined;
  const rules = (c: string) => state.chains.get(c) ?? [];
  const out: string[] = [];
  const ensureChain = (c: string) => {
    if (!has(c)) out.push(`-N ${c}`);
  };
  ensureChain(TOP_DNAT);
  for (const c of ['PREROUTING', 'OUTPUT']) {
    const list = rules(c);
    const mine = list.findIndex((r) => same(r, jumpToDnat()));
    const kube = list.findIndex((r) => r[r.length - 1] === KUBE_SERVICES && r[r.length - 2] === '-j');
    if (mine < 0) out.push(line('-A', c, jumpToDnat()));
    else if (kube > mine) out.push(line('-D', c, jumpToDnat()), line('-A', c, jumpToDnat()));
  }
  if (needsMasqChains(plan, fp)) {
    ensureChain(SETMARK);
    ensureChain(MASQ);
    if (!rules(SETMARK).some((r) => same(r, setMarkRule(plan.markMasqBit)))) out.push(line('-A', SETMARK, setMarkRule(plan.markMasqBit)));
    if (!rules(MASQ).some((r) => same(r, masqRule(plan.markMasqBit)))) out.push(line('-A', MASQ, masqRule(plan.markMasqBit)));
    if (!rules('POSTROUTING').some((r) => same(r, jumpToMasq()))) out.push(line('-I', 'POSTROUTING', jumpToMasq(), 1));
  }
  for (const r of rules(TOP_DNAT)) if (targetOf(r) === chain) out.push(line('-D', TOP_DNAT, r));
  out.push(has(chain) ? `-F ${chain}` : `-N ${chain}`);
  out.push(line('-A', chain, OWN_MARKER), ...dnatRules(plan, fp).map((r) => line('-A', chain, r)));
  out.push(...insertAtTop(TOP_DNAT, entryRules(plan, fp)));
  return out;
}

/** DEL fast path: exactly what the ADD of this plan made. Fails when any of it is missing. */
export function delFastDocument(plan: Plan, fp: FamilyPlan): string {
  const chain = dnatChain(plan.owner.network, plan.owner.containerID);
  return natDocument([...entryRules(plan, fp).map((r) => line('-D', TOP_DNAT, r)), `-F ${chain}`, `-X ${chain}`]);
}

/** The target of a rule (`-j X` or `-g X`), if any. */
export function targetOf(args: Args): string | undefined {
  for (let i = args.length - 2; i >= 0; i--) if (args[i] === '-j' || args[i] === '-g' || args[i] === '--jump' || args[i] === '--goto') return args[i + 1];
  return undefined;
}

/** Lines that remove chains and every listed rule that jumps to them. */
export function teardownLines(chains: readonly string[], referers: readonly Rule[]): string[] {
  const set = new Set(chains);
  const out: string[] = [];
  for (const r of referers) if (set.has(targetOf(r.args) ?? '')) out.push(line('-D', r.chain, r.args));
  for (const c of chains) out.push(`-F ${c}`);
  for (const c of chains) out.push(`-X ${c}`);
  return out;
}
