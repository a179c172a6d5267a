/**
 * Port ranges (pure). A range publish (`-p 40000-56383:40000-56383/udp`) reaches the plugin as one
 * mapping per port; the consecutive host ports of one protocol and host address that keep their port
 * (hostPort == containerPort) are one interval here, so that a backend can program them as one element
 * (nftables) or one rule (iptables `--dport a:b`) that forwards to the pod's address and keeps the port.
 * Every other mapping stays a single port.
 */
import type { Protocol } from './config.js';
import type { Forward } from './plan.js';

/** Host ports first..last (inclusive) of one protocol, forwarded to the same ports of the pod. */
export interface PortSpan {
  protocol: Protocol;
  first: number;
  last: number;
  /** Only this host address; undefined means every local address of the family. */
  hostIP?: string;
}

/** A plan family's forwards as programmed: intervals, and the single ports left over. */
export interface CompactForwards {
  spans: PortSpan[];
  singles: Forward[];
}

/** The shortest run of ports that becomes a span: a lone port keeps its per-port form. */
export const MIN_SPAN = 2;

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];
const INDEX_BITS = 2 ** 18;
const PORT_BITS = 65536;

/** Numbers the (protocol, hostIP) groups: 0-2 are the protocols without a host address. */
function groupIds(forwards: readonly Forward[]): Uint32Array {
  const byHostIP = new Map<string, number>();
  const ids = new Uint32Array(forwards.length);
  for (let i = 0; i < forwards.length; i++) {
    const f = forwards[i]!;
    let base = 0;
    if (f.hostIP !== undefined) {
      let b = byHostIP.get(f.hostIP);
      if (b === undefined) byHostIP.set(f.hostIP, (b = (byHostIP.size + 1) * PROTOCOLS.length));
      base = b;
    }
    ids[i] = base + PROTOCOLS.indexOf(f.protocol);
  }
  return ids;
}

/**
 * Compacts forwards into maximal spans of at least MIN_SPAN consecutive host ports with hostPort ==
 * containerPort (per protocol and hostIP). Singles keep their input order; spans come in the order of
 * their group's first appearance, then port. Repeated keys count once (the first one wins). One numeric
 * sort and one scan: a CNI call compacts its forwards once, so this avoids per-forward strings and sets.
 */
export function compactForwards(forwards: readonly Forward[]): CompactForwards {
  const cached = memo.get(forwards);
  if (cached) return cached;
  const out = oneRun(forwards) ?? compactSorted(forwards);
  memo.set(forwards, out);
  return out;
}

/** Each plan family's forwards are compacted once, whatever the number of backend functions asking. */
const memo = new WeakMap<readonly Forward[], CompactForwards>();

/**
 * The shape of a range publish, checked in one pass: every forward on every address, one protocol,
 * hostPort == containerPort, ports ascending by one. Undefined for anything else.
 */
function oneRun(forwards: readonly Forward[]): CompactForwards | undefined {
  const head = forwards[0];
  if (!head || forwards.length < MIN_SPAN) return undefined;
  const { protocol, hostPort: first } = head;
  for (let i = 0; i < forwards.length; i++) {
    const f = forwards[i]!;
    if (f.hostIP !== undefined || f.protocol !== protocol || f.hostPort !== first + i || f.containerPort !== f.hostPort) return undefined;
  }
  return { spans: [{ protocol, first, last: first + forwards.length - 1 }], singles: [] };
}

function compactSorted(forwards: readonly Forward[]): CompactForwards {
  if (forwards.length >= INDEX_BITS) throw new RangeError(`at most ${INDEX_BITS - 1} forwards`);
  const ids = groupIds(forwards);
  // (group, port, index) as one sortable number: below 2^53 for up to 2^19 groups.
  const order = new Float64Array(forwards.length);
  for (let i = 0; i < forwards.length; i++) order[i] = (ids[i]! * PORT_BITS + forwards[i]!.hostPort) * INDEX_BITS + i;
  order.sort();
  /** 0: a repeated key, 1: a single, 2: part of a span */
  const role = new Uint8Array(forwards.length);
  const spans: PortSpan[] = [];
  let run: number[] = [];
  const closeRun = () => {
    if (run.length >= MIN_SPAN) {
      const head = forwards[run[0]!]!;
      spans.push({
        protocol: head.protocol,
        first: head.hostPort,
        last: forwards[run[run.length - 1]!]!.hostPort,
        ...(head.hostIP !== undefined ? { hostIP: head.hostIP } : {}),
      });
      for (const i of run) role[i] = 2;
    }
    run = [];
  };
  let prevKey = -1;
  for (let k = 0; k < order.length; k++) {
    const v = order[k]!;
    const i = v % INDEX_BITS;
    const key = (v - i) / INDEX_BITS;
    if (key === prevKey) continue; // the same group and port again
    role[i] = 1;
    const f = forwards[i]!;
    // The run goes on with the next port of the same group (a remapped forward has ended it).
    const next = run.length > 0 && key === prevKey + 1 && ids[run[run.length - 1]!] === ids[i];
    if (!next || f.hostPort !== f.containerPort) closeRun();
    if (f.hostPort === f.containerPort) run.push(i);
    prevKey = key;
  }
  closeRun();
  return { spans, singles: forwards.filter((_, i) => role[i] === 1) };
}

/** The forwards a span stands for, one per port. */
export function spanForwards(s: PortSpan): Forward[] {
  const out: Forward[] = [];
  for (let p = s.first; p <= s.last; p++) {
    out.push({ protocol: s.protocol, hostPort: p, containerPort: p, ...(s.hostIP !== undefined ? { hostIP: s.hostIP } : {}) });
  }
  return out;
}

/** The inverse of compactForwards (as a set of forwards). */
export const expandForwards = (c: CompactForwards): Forward[] => [...c.singles, ...c.spans.flatMap(spanForwards)];

/** Number of host ports a span or a single covers. */
export const spanLength = (s: Pick<PortSpan, 'first' | 'last'>): number => s.last - s.first + 1;

/** Whether two inclusive port intervals share a port. */
export const overlaps = (a: Pick<PortSpan, 'first' | 'last'>, b: Pick<PortSpan, 'first' | 'last'>): boolean =>
  a.first <= b.last && b.first <= a.last;

/**
 * What is left of the interval [first, last] once the ports of `cuts` are taken out: at most
 * cuts.length + 1 intervals, in port order. Used when another attachment takes over part of a range.
 */
export function subtractIntervals(
  first: number,
  last: number,
  cuts: ReadonlyArray<Pick<PortSpan, 'first' | 'last'>>,
): Array<{ first: number; last: number }> {
  const sorted = cuts.filter((c) => overlaps(c, { first, last })).sort((a, b) => a.first - b.first);
  const out: Array<{ first: number; last: number }> = [];
  let next = first;
  for (const c of sorted) {
    if (c.first > next) out.push({ first: next, last: c.first - 1 });
    next = Math.max(next, c.last + 1);
    if (next > last) break;
  }
  if (next <= last) out.push({ first: next, last });
  return out;
}

/**
 * One port or one span as iptables writes it (`8080`, `40000:56383`) and the number of ports it counts
 * for in a multiport match (a range counts two of its fifteen).
 */
export interface PortSpec {
  text: string;
  weight: 1 | 2;
}

/**
 * Port lists for multiport matches: singles as `p`, spans as `a:b`, in chunks that count at most `max`
 * (15 in iptables' multiport). Singles first in their order, then spans.
 */
export function multiportChunks(singles: readonly number[], spans: ReadonlyArray<Pick<PortSpan, 'first' | 'last'>>, max = 15): string[][] {
  const specs: PortSpec[] = [
    ...singles.map((p) => ({ text: String(p), weight: 1 as const })),
    ...spans.map((s) => ({ text: `${s.first}:${s.last}`, weight: 2 as const })),
  ];
  const chunks: string[][] = [];
  let chunk: string[] = [];
  let used = 0;
  for (const s of specs) {
    if (used + s.weight > max) {
      chunks.push(chunk);
      chunk = [];
      used = 0;
    }
    chunk.push(s.text);
    used += s.weight;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** The host ports of one protocol in a compacted family, as sorted, merged intervals (any hostIP). */
export function protocolIntervals(c: CompactForwards, protocol: Protocol): Array<{ first: number; last: number }> {
  const list = [
    ...c.spans.filter((s) => s.protocol === protocol).map((s) => ({ first: s.first, last: s.last })),
    ...c.singles.filter((f) => f.protocol === protocol).map((f) => ({ first: f.hostPort, last: f.hostPort })),
  ].sort((a, b) => a.first - b.first);
  const out: Array<{ first: number; last: number }> = [];
  for (const iv of list) {
    const last = out[out.length - 1];
    if (last && iv.first <= last.last + 1) last.last = Math.max(last.last, iv.last);
    else out.push({ ...iv });
  }
  return out;
}
