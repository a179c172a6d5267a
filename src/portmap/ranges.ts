/**
 * Port ranges (pure). A range publish (`-p 40000-56383:40000-56383/udp`) reaches the plugin as one
 * mapping per port; the consecutive host ports of one protocol and host address that keep their port
 * (hostPort == containerPort) are one interval here, so that a backend can program them as one element
 * (nftables) or one rule (iptables `--dport a:b`) that forwards to the pod's address and keeps the port.
 * Every other mapping stays a single port.
 */
import type { Protocol } from '../cni/config.js';
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

const groupOf = (protocol: Protocol, hostIP: string | undefined): string => `${protocol} ${hostIP ?? '*'}`;

/**
 * Compacts forwards into maximal spans of at least MIN_SPAN consecutive host ports with hostPort ==
 * containerPort (per protocol and hostIP), in O(n log n). Singles keep their input order; spans are
 * sorted by protocol, hostIP and first port. Repeated keys count once (the first one wins).
 */
export function compactForwards(forwards: readonly Forward[]): CompactForwards {
  const seen = new Set<string>();
  const unique: Forward[] = [];
  for (const f of forwards) {
    const key = `${groupOf(f.protocol, f.hostIP)} ${f.hostPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    unique.push(f);
  }
  const byGroup = new Map<string, Forward[]>();
  for (const f of unique) {
    if (f.hostPort !== f.containerPort) continue;
    const g = groupOf(f.protocol, f.hostIP);
    let list = byGroup.get(g);
    if (!list) byGroup.set(g, (list = []));
    list.push(f);
  }
  const spans: PortSpan[] = [];
  const inSpan = new Set<Forward>();
  for (const g of [...byGroup.keys()].sort()) {
    const list = byGroup.get(g)!.sort((a, b) => a.hostPort - b.hostPort);
    let start = 0;
    for (let i = 1; i <= list.length; i++) {
      if (i < list.length && list[i]!.hostPort === list[i - 1]!.hostPort + 1) continue;
      if (i - start >= MIN_SPAN) {
        const head = list[start]!;
        spans.push({
          protocol: head.protocol,
          first: head.hostPort,
          last: list[i - 1]!.hostPort,
          ...(head.hostIP !== undefined ? { hostIP: head.hostIP } : {}),
        });
        for (let j = start; j < i; j++) inSpan.add(list[j]!);
      }
      start = i;
    }
  }
  return { spans, singles: unique.filter((f) => !inSpan.has(f)) };
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
