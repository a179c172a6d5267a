/**
 * Pure rendering of plans into nft JSON commands (libnftables-json(5)). Nothing here runs a process.
 *
 * One `inet` table holds everything. Forwards are map elements, so a packet costs a few map lookups
 * whatever the number of mappings on the node:
 *
 *   prerouting/output (nat, dstnat or dstnat+10):
 *       ip daddr @servicecidrs4 return            (and ip6)
 *       fib daddr type local jump hostports
 *   hostports:
 *       jump conditional                          (attachments with conditionsV4/V6: rules)
 *       (key) != @hostipports4_port dnat ip to ip daddr . meta l4proto . th dport map @hostipports4_addr
 *       meta l4proto { tcp, udp, sctp } dnat ip to (key) map @hostipports4_addr : (key) map @hostipports4_port
 *       the same two for @hostports4_* with the key meta l4proto . th dport (and ip6)
 *   postrouting (nat, srcnat):
 *       ct status dnat ip daddr @masqall4 masquerade
 *       ct status dnat ip daddr @snat4 ip saddr @podnets4 masquerade       (hairpin: pod and subnet siblings)
 *       ct status dnat ip daddr @snat4 ip saddr 127.0.0.0/8 masquerade     (node -> 127.0.0.1:hostPort)
 *   guard (filter input): drop packets to 127.0.0.0/8 from other interfaces than lo that are not replies
 *       or DNATed (route_localnet would otherwise let neighbours reach 127.0.0.1 services, CVE-2020-8558).
 *
 * Port ranges (portmap/ranges.ts): the address maps are interval maps (`flags interval`, a pipapo set in
 * the kernel, Linux >= 5.6 and nft >= 0.9.4 for concatenated intervals), with a per-element counter. A
 * single port has an address element and a port element; a span of ports that keep their number has one
 * address element `udp . 40000-56383` and no port element, and is DNATed to the address alone (the port
 * stays). So the first DNAT rule of each pair takes keys without a port element (spans) and the second
 * the others: each new connection is looked up and counted once, and the kernel refuses an element that
 * overlaps another one in the same map (two owners can never hold one port). nft 1.0.6 accepts the
 * address:port DNAT from an interval map only after a transport protocol match, hence `meta l4proto`.
 *
 * Every element carries its owner's comment; the masquerade maps map the pod address to the owner's tag so
 * that a delete can be made conditional (see casDelete).
 */
import { createHash } from 'node:crypto';
import { type Cidr, type Family, cidrContains, cidrText } from '../../net/ip.js';
import type { Forward, Plan } from '../../portmap/plan.js';
import { type PortSpan, compactForwards } from '../../portmap/ranges.js';
import { parseNftConditions } from './conditions.js';
import { type Command, type Element, type Expr, FAMILY, TABLE, base } from './json.js';
/** The reference's placement (dstnat), and after every nat chain at dstnat (kube-proxy, iptables nat). */
export const PRIORITY_DEFAULT = -100;
export const PRIORITY_AFTER_SERVICES = -90;
export const PRIORITY_SRCNAT = 100;

export const priorityFor = (afterServices: boolean): number => (afterServices ? PRIORITY_AFTER_SERVICES : PRIORITY_DEFAULT);

const addrType = (f: Family): string => (f === 4 ? 'ipv4_addr' : 'ipv6_addr');
const ipProto = (f: Family): 'ip' | 'ip6' => (f === 4 ? 'ip' : 'ip6');

/**
 * Each forward map is a pair: key -> address and key -> port. One `addr . port` map would need a
 * concatenated data type, which nft's JSON parser accepts only from nft 1.0.7 (and the kernel from 5.6);
 * the pair works everywhere and is still one lookup per map.
 */
export const mapNames = (f: Family) => ({
  hostportsAddr: `hostports${f}_addr`,
  hostportsPort: `hostports${f}_port`,
  hostipportsAddr: `hostipports${f}_addr`,
  hostipportsPort: `hostipports${f}_port`,
  snat: `snat${f}`,
  masqall: `masqall${f}`,
  podnets: `podnets${f}`,
  servicecidrs: `servicecidrs${f}`,
});

/** A family's forward maps: [address map, port map, keyed by hostIP], wildcard keys first. */
export function forwardMaps(f: Family): ReadonlyArray<readonly [string, string, boolean]> {
  const m = mapNames(f);
  return [
    [m.hostportsAddr, m.hostportsPort, false],
    [m.hostipportsAddr, m.hostipportsPort, true],
  ];
}

export interface BaseChain {
  name: string;
  type: 'nat' | 'filter';
  hook: string;
  prio: number;
}

export function baseChains(priority: number): BaseChain[] {
  return [
    { name: 'prerouting', type: 'nat', hook: 'prerouting', prio: priority },
    { name: 'output', type: 'nat', hook: 'output', prio: priority },
    { name: 'postrouting', type: 'nat', hook: 'postrouting', prio: PRIORITY_SRCNAT },
    { name: 'guard', type: 'filter', hook: 'input', prio: 0 },
  ];
}

export const REGULAR_CHAINS = ['hostports', 'conditional'] as const;

const payload = (protocol: string, field: string): Expr => ({ payload: { protocol, field } });
const match = (left: unknown, right: unknown, op = '=='): Expr => ({ match: { op, left, right } });
const meta = (key: string): Expr => ({ meta: { key } });
const ctStatusDnat = match({ ct: { key: 'status' } }, 'dnat', 'in');
const l4protos = match(meta('l4proto'), { set: ['tcp', 'udp', 'sctp'] });

/** The static rules of each chain, in order. The conditional chain holds only per-attachment rules. */
export function staticRules(): Record<string, Expr[][]> {
  const toHostports: Expr[][] = [];
  const hostports: Expr[][] = [[{ jump: { target: 'conditional' } }]];
  const postrouting: Expr[][] = [];
  for (const f of [4, 6] as const) {
    const m = mapNames(f);
    const ip = ipProto(f);
    const nfproto = match(meta('nfproto'), f === 4 ? 'ipv4' : 'ipv6');
    toHostports.push([match(payload(ip, 'daddr'), `@${m.servicecidrs}`), { return: null }]);
    const ipKey = { concat: [payload(ip, 'daddr'), meta('l4proto'), payload('th', 'dport')] };
    const anyKey = { concat: [meta('l4proto'), payload('th', 'dport')] };
    for (const [key, addrMap, portMap] of [
      [ipKey, m.hostipportsAddr, m.hostipportsPort],
      [anyKey, m.hostportsAddr, m.hostportsPort],
    ] as const) {
      const addr = { map: { key, data: `@${addrMap}` } };
      // Spans: no port element, the address alone (the port stays).
      hostports.push([nfproto, match(key, `@${portMap}`, '!='), { dnat: { family: ip, addr } }]);
      hostports.push([nfproto, l4protos, { dnat: { family: ip, addr, port: { map: { key, data: `@${portMap}` } } } }]);
    }
    postrouting.push([ctStatusDnat, match(payload(ip, 'daddr'), `@${m.masqall}`), { masquerade: null }]);
    postrouting.push([ctStatusDnat, match(payload(ip, 'daddr'), `@${m.snat}`), match(payload(ip, 'saddr'), `@${m.podnets}`), { masquerade: null }]);
  }
  postrouting.push([
    ctStatusDnat,
    match(payload('ip', 'daddr'), `@${mapNames(4).snat}`),
    match(payload('ip', 'saddr'), { prefix: { addr: '127.0.0.0', len: 8 } }),
    { masquerade: null },
  ]);
  toHostports.push([match({ fib: { result: 'type', flags: ['daddr'] } }, 'local'), { jump: { target: 'hostports' } }]);
  const guard: Expr[][] = [
    [
      match(meta('iifname'), 'lo', '!='),
      match(payload('ip', 'daddr'), { prefix: { addr: '127.0.0.0', len: 8 } }),
      match({ ct: { key: 'state' } }, { set: ['established', 'related'] }, '!='),
      match({ ct: { key: 'status' } }, 'dnat', '!='),
      { drop: null },
    ],
  ];
  return { prerouting: toHostports, output: toHostports, hostports, postrouting, guard };
}

/**
 * What the address maps are declared with: intervals and a counter per element. A map cannot change its
 * flags or statements in place (`add map` of an existing map with others fails), so a table made before
 * (plain hash maps) is migrated: see reconcile.ts, migrateForwardMaps.
 */
export const FORWARD_MAP_SHAPE = { flags: ['interval'], stmt: [{ counter: null }] } as const;

/** The address maps of both families (the ones with FORWARD_MAP_SHAPE). */
export const forwardAddrMaps = (): string[] => [4, 6].flatMap((f) => {
  const m = mapNames(f as Family);
  return [m.hostportsAddr, m.hostipportsAddr];
});

/** Commands that create (idempotently) the table, maps, sets and chains, and rewrite the static rules. */
export function skeleton(priority: number): Command[] {
  const cmds: Command[] = [{ add: { table: { family: FAMILY, name: TABLE } } }];
  for (const f of [4, 6] as const) {
    const m = mapNames(f);
    const a = addrType(f);
    for (const [name, type] of [
      [m.hostportsAddr, ['inet_proto', 'inet_service']],
      [m.hostipportsAddr, [a, 'inet_proto', 'inet_service']],
    ] as const) {
      cmds.push({ add: { map: { ...base, name, type, map: a, ...FORWARD_MAP_SHAPE } } });
    }
    for (const [name, type] of [
      [m.hostportsPort, ['inet_proto', 'inet_service']],
      [m.hostipportsPort, [a, 'inet_proto', 'inet_service']],
    ] as const) {
      cmds.push({ add: { map: { ...base, name, type, map: 'inet_service' } } });
    }
    cmds.push({ add: { map: { ...base, name: m.snat, type: a, map: 'mark' } } });
    cmds.push({ add: { map: { ...base, name: m.masqall, type: a, map: 'mark' } } });
    cmds.push({ add: { set: { ...base, name: m.podnets, type: a, flags: ['interval'] } } });
    cmds.push({ add: { set: { ...base, name: m.servicecidrs, type: a, flags: ['interval'] } } });
  }
  cmds.push({ add: { map: { ...base, name: READY_MAP, type: 'mark', map: 'mark' } } });
  cmds.push({ add: { set: { ...base, name: OWNERS_SET, type: ['mark', 'mark'] } } });
  for (const name of REGULAR_CHAINS) cmds.push({ add: { chain: { ...base, name } } });
  for (const c of baseChains(priority)) {
    cmds.push({ add: { chain: { ...base, name: c.name, type: c.type, hook: c.hook, prio: c.prio, policy: 'accept' } } });
  }
  for (const [chain, rules] of Object.entries(staticRules())) {
    cmds.push({ flush: { chain: { ...base, name: chain } } });
    for (const expr of rules) cmds.push({ add: { rule: { ...base, chain, expr } } });
  }
  return cmds;
}

const forwardKey = (f: Forward): unknown =>
  f.hostIP ? { concat: [f.hostIP, f.protocol, f.hostPort] } : { concat: [f.protocol, f.hostPort] };

/** The port part of a key: a number, or `{range: [a, b]}` (nft lists a one-port interval as the number). */
export const portsJson = (first: number, last: number): unknown => (first === last ? first : { range: [first, last] });

/** The key of a span (or of a piece of one) in an address map. */
export const spanKey = (s: PortSpan): unknown =>
  s.hostIP ? { concat: [s.hostIP, s.protocol, portsJson(s.first, s.last)] } : { concat: [s.protocol, portsJson(s.first, s.last)] };

/**
 * The owner comment as written to the kernel. nft prints comments between double quotes without escaping
 * them, so a `"` (legal in an interface name) would make `nft list ruleset` unparseable, or let a name
 * inject text into a ruleset saved and restored with `nft -f`. Ownership is the hash, not the readable part.
 */
export const nftComment = (comment: string): string => comment.replace(/["\\]/g, "'");

/**
 * The ownership witness: set `owners` holds `<id, first 32 bits> . <id, last 32 bits>` for every attachment
 * with elements. An ADD that takes a key over from another attachment removes that attachment's witness,
 * so a DEL can delete its elements with deletes only (see delElements): if its witness is gone, the
 * transaction fails and the DEL compares each element instead.
 */
export const OWNERS_SET = 'owners';

export const witnessOf = (ownerId: string, comment?: string): Element => ({
  set: OWNERS_SET,
  key: { concat: [Number.parseInt(ownerId.slice(0, 8), 16), Number.parseInt(ownerId.slice(8, 16), 16)] },
  ...(comment !== undefined ? { comment } : {}),
});

/** The map and set elements one attachment owns (attachments with conditions use rules instead of the maps), witness first. */
export function ownerElements(plan: Plan): Element[] {
  const out: Element[] = [];
  const comment = nftComment(plan.owner.comment);
  for (const fp of plan.families) {
    const m = mapNames(fp.family);
    if (!fp.conditions) {
      const { spans, singles } = compactForwards(fp.forwards);
      for (const f of singles) {
        const key = forwardKey(f);
        out.push({ set: f.hostIP ? m.hostipportsAddr : m.hostportsAddr, key, value: fp.pod.address, comment });
        out.push({ set: f.hostIP ? m.hostipportsPort : m.hostportsPort, key, value: f.containerPort, comment });
      }
      for (const s of spans) out.push({ set: s.hostIP ? m.hostipportsAddr : m.hostportsAddr, key: spanKey(s), value: fp.pod.address, comment });
    }
    if (fp.masquerade === 'all') out.push({ set: m.masqall, key: fp.pod.address, value: plan.owner.tag, comment });
    if (fp.masquerade === 'hairpin') out.push({ set: m.snat, key: fp.pod.address, value: plan.owner.tag, comment });
  }
  return out.length > 0 ? [witnessOf(plan.owner.id, comment), ...out] : out;
}

/** Pod subnets used as hairpin sources. Shared by every pod of a subnet: added on ADD, pruned by GC only. */
export function podnetElements(plan: Plan): Element[] {
  return plan.families
    .filter((fp) => fp.masquerade === 'hairpin')
    .map((fp) => ({
      set: mapNames(fp.family).podnets,
      key: { prefix: { addr: fp.pod.network, len: fp.pod.prefixLength } },
      comment: cidrText(fp.pod),
    }));
}

function elemJson(e: Element, withComment: boolean): unknown {
  const key = withComment && e.comment ? { elem: { val: e.key, comment: e.comment } } : e.key;
  return e.value === undefined ? key : [key, e.value];
}

export const addElements = (elements: readonly Element[]): Command[] =>
  elements.map((e) => ({ add: { element: { ...base, name: e.set, elem: [elemJson(e, true)] } } }));

/**
 * Compare-and-delete: `add {K: V}` is a no-op when K already maps to V, inserts it when K is absent, and
 * fails the whole transaction when K maps to something else (another owner took the key). The delete
 * that follows then removes K. So the pair deletes our element only if it is still ours, atomically.
 */
export const casDelete = (elements: readonly Element[]): Command[] =>
  elements.flatMap((e) => [
    { add: { element: { ...base, name: e.set, elem: [elemJson(e, false)] } } },
    { delete: { element: { ...base, name: e.set, elem: [e.key] } } },
  ]);

/**
 * Deletes only, for a DEL whose elements start with their owner's witness (ownerElements): all of them go,
 * or, when any is missing (the witness after a takeover, everything after an earlier DEL), none.
 */
export const delElements = (elements: readonly Element[]): Command[] =>
  elements.map((e) => ({ delete: { element: { ...base, name: e.set, elem: [e.key] } } }));

/** Replace: delete whatever K maps to (it must exist), then add ours. */
export const replaceElements = (elements: readonly Element[]): Command[] =>
  elements.flatMap((e) => [
    { delete: { element: { ...base, name: e.set, elem: [e.key] } } },
    ...addElements([e]),
  ]);

/** The Service CIDR sets are node-wide: each ADD rewrites them from its configuration. */
export function serviceCidrCommands(plan: Pick<Plan, 'serviceCIDRs'>): Command[] {
  const cmds: Command[] = [];
  for (const f of [4, 6] as const) {
    const name = mapNames(f).servicecidrs;
    cmds.push({ flush: { set: { ...base, name } } });
    const all = plan.serviceCIDRs.filter((c) => c.family === f);
    // An interval set refuses overlapping elements ("conflicting intervals specified"): keep the outermost
    // CIDR of each overlapping group (and the first of duplicates).
    const cidrs = all.filter((c, i) => !all.some((o, j) => j !== i && cidrContains(o, c.network) && (o.prefixLength < c.prefixLength || (o.prefixLength === c.prefixLength && j < i))));
    if (cidrs.length > 0) {
      cmds.push({ add: { element: { ...base, name, elem: cidrs.map((c) => ({ prefix: { addr: c.network, len: c.prefixLength } })) } } });
    }
  }
  return cmds;
}

/** Per-attachment DNAT rules for families with conditions, in the conditional chain. */
export function conditionalRules(plan: Plan): Command[] {
  const cmds: Command[] = [];
  for (const fp of plan.families) {
    if (!fp.conditions) continue;
    const conds = parseNftConditions(fp.conditions, fp.family);
    const ip = ipProto(fp.family);
    const { spans, singles } = compactForwards(fp.forwards);
    const forwards = [
      ...singles.map((f) => ({ ...f, first: f.hostPort, last: f.hostPort, to: f.containerPort as number | undefined })),
      ...spans.map((s) => ({ ...s, to: undefined })),
    ];
    for (const f of forwards) {
      const expr: Expr[] = [
        match(meta('nfproto'), fp.family === 4 ? 'ipv4' : 'ipv6'),
        ...conds,
        ...(f.hostIP ? [match(payload(ip, 'daddr'), f.hostIP)] : []),
        match(meta('l4proto'), f.protocol),
        match(payload('th', 'dport'), portsJson(f.first, f.last)),
        // A span keeps the port: DNAT to the address alone.
        { dnat: { family: ip, addr: fp.pod.address, ...(f.to !== undefined ? { port: f.to } : {}) } },
      ];
      cmds.push({ add: { rule: { ...base, chain: 'conditional', expr, comment: nftComment(plan.owner.comment) } } });
    }
  }
  return cmds;
}

export const deleteRule = (chain: string, handle: number): Command => ({ delete: { rule: { ...base, chain, handle } } });

/** Deletes base chains whose hook priority must change (`add chain` cannot change it); the skeleton re-adds them. */
export const deleteChains = (names: readonly string[]): Command[] =>
  names.map((name) => ({ delete: { chain: { ...base, name } } }));

/**
 * The readiness mark: map `ready` holds one element, `1 : <hash>`, where the hash covers everything the
 * skeleton writes (base chains and their priority, the static rules, the Service CIDRs). A fast ADD only
 * adds elements, among them `1 : <hash of its settings>`: a no-op when the skeleton was written for the
 * same settings, and a failure of the whole transaction when the map is missing (first ADD, `nft flush
 * ruleset`) or holds another hash (other settings, a newer plugin's rules). The ADD then takes the slow
 * path, which rewrites the skeleton. So a common ADD deletes nothing: a transaction that deletes (a flush,
 * a rule or an element) makes nft wait for an RCU grace period when it closes its socket, about 10 ms.
 * A DEL deletes only its elements and is answered at commit (see answeredAtCommit in runner.ts); GC, which
 * reads and deletes anyway, rewrites the skeleton too, so a chain flushed by hand heals at the next GC
 * (or slow-path ADD).
 */
export const READY_MAP = 'ready';

export function readyHash(priority: number, serviceCIDRs: readonly Cidr[]): number {
  const text = JSON.stringify({
    chains: baseChains(priority), rules: staticRules(), maps: FORWARD_MAP_SHAPE, cidrs: serviceCIDRs.map(cidrText).sort(),
  });
  return Number.parseInt(createHash('sha256').update(text).digest('hex').slice(0, 8), 16);
}

/** Fails the transaction unless the skeleton was written for this hash; changes nothing when it was. */
export const requireReady = (hash: number): Command => ({ add: { element: { ...base, name: READY_MAP, elem: [[1, hash]] } } });

/** Marks the skeleton written in the same transaction as ready for this hash. */
export const markReady = (hash: number): Command[] => [{ flush: { map: { ...base, name: READY_MAP } } }, requireReady(hash)];

/** Everything the skeleton of a plan's settings is: chains, static rules, Service CIDRs, the ready mark. */
export function skeletonFor(plan: Pick<Plan, 'afterServices' | 'serviceCIDRs'>): Command[] {
  const priority = priorityFor(plan.afterServices);
  return [...skeleton(priority), ...serviceCidrCommands(plan), ...markReady(readyHash(priority, plan.serviceCIDRs))];
}
