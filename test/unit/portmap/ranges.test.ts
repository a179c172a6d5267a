import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Forward } from '../../../src/portmap/plan.js';
import {
  MIN_SPAN, compactForwards, expandForwards, multiportChunks, overlaps, protocolIntervals, spanForwards, subtractIntervals,
} from '../../../src/portmap/ranges.js';

const SEED = 20261201;
const keyOf = (f: Forward): string => `${f.protocol} ${f.hostIP ?? '*'} ${f.hostPort} ${f.containerPort}`;
const keySet = (fs: readonly Forward[]): string[] => [...new Set(fs.map(keyOf))].sort();

const udp = (hostPort: number, containerPort = hostPort, hostIP?: string): Forward => ({
  protocol: 'udp', hostPort, containerPort, ...(hostIP ? { hostIP } : {}),
});

describe('compactForwards', () => {
  it('turns a range publish into one span', () => {
    const forwards = Array.from({ length: 16384 }, (_, i) => udp(40000 + i));
    const c = compactForwards(forwards);
    expect(c.spans).toEqual([{ protocol: 'udp', first: 40000, last: 56383 }]);
    expect(c.singles).toEqual([]);
  });

  it('keeps remapped ports, lone ports and other protocols or addresses apart', () => {
    const c = compactForwards([
      udp(5000), udp(5001), udp(5002),
      udp(5003, 80), // remapped: a single, and it ends the run
      udp(5004), // alone
      { protocol: 'tcp', hostPort: 5001, containerPort: 5001 },
      { protocol: 'tcp', hostPort: 5002, containerPort: 5002 },
      udp(5001, 5001, '192.0.2.1'),
    ]);
    expect(c.spans).toEqual([
      { protocol: 'tcp', first: 5001, last: 5002 },
      { protocol: 'udp', first: 5000, last: 5002 },
    ]);
    expect(c.singles).toEqual([udp(5003, 80), udp(5004), udp(5001, 5001, '192.0.2.1')]);
  });

  it('finds runs in any input order and counts a repeated key once', () => {
    const c = compactForwards([udp(7), udp(5), udp(6), udp(6), udp(9)]);
    expect(c.spans).toEqual([{ protocol: 'udp', first: 5, last: 7 }]);
    expect(c.singles).toEqual([udp(9)]);
  });

  it('handles the ends of the port space', () => {
    const c = compactForwards([udp(1), udp(2), udp(65534), udp(65535)]);
    expect(c.spans.map((s) => [s.first, s.last])).toEqual([[1, 2], [65534, 65535]]);
  });

  const forwardArb = fc.record({
    protocol: fc.constantFrom('tcp' as const, 'udp' as const, 'sctp' as const),
    hostPort: fc.integer({ min: 1, max: 60 }),
    offset: fc.constantFrom(0, 0, 0, 1),
    hostIP: fc.constantFrom(undefined, '192.0.2.1', '2001:db8::1'),
  }).map(({ protocol, hostPort, offset, hostIP }): Forward => ({
    protocol, hostPort, containerPort: hostPort + offset, ...(hostIP ? { hostIP } : {}),
  }));
  // Unique keys, as forwardsFor hands them over.
  const forwardsArb = fc.uniqueArray(forwardArb, { selector: (f) => `${f.protocol} ${f.hostIP ?? '*'} ${f.hostPort}`, maxLength: 120 });

  it('property: the expansion of the compacted form is the input set', () => {
    fc.assert(fc.property(forwardsArb, (forwards) => {
      expect(keySet(expandForwards(compactForwards(forwards)))).toEqual(keySet(forwards));
    }), { numRuns: 400, seed: SEED });
  });

  it('property: spans are disjoint, long enough and maximal; no port is both a span and a single', () => {
    fc.assert(fc.property(forwardsArb, (forwards) => {
      const { spans, singles } = compactForwards(forwards);
      for (const s of spans) expect(s.last - s.first + 1).toBeGreaterThanOrEqual(MIN_SPAN);
      for (const [i, a] of spans.entries()) {
        for (const b of spans.slice(i + 1)) {
          if (a.protocol !== b.protocol || a.hostIP !== b.hostIP) continue;
          // Not overlapping and not adjacent (else they would be one span).
          expect(a.last + 1 < b.first || b.last + 1 < a.first).toBe(true);
        }
      }
      for (const f of singles) {
        for (const s of spans) {
          if (f.protocol !== s.protocol || f.hostIP !== s.hostIP) continue;
          expect(f.hostPort >= s.first && f.hostPort <= s.last).toBe(false);
          // A same-port single next to a span would have joined it.
          if (f.hostPort === f.containerPort) expect(f.hostPort === s.first - 1 || f.hostPort === s.last + 1).toBe(false);
        }
      }
      expect(singles.length + spans.reduce((n, s) => n + s.last - s.first + 1, 0)).toBe(forwards.length);
    }), { numRuns: 400, seed: SEED });
  });

  it('property: a range publish in any order, with or without a stray port, gives the same spans', () => {
    const runArb = fc.record({ first: fc.integer({ min: 1, max: 60000 }), length: fc.integer({ min: 2, max: 3000 }), protocol: fc.constantFrom('tcp' as const, 'udp' as const) });
    fc.assert(fc.property(runArb, fc.boolean(), ({ first, length, protocol }, stray) => {
      const run = Array.from({ length }, (_, i): Forward => ({ protocol, hostPort: first + i, containerPort: first + i }));
      const want = [{ protocol, first, last: first + length - 1 }];
      expect(compactForwards(run)).toEqual({ spans: want, singles: [] });
      // The same ports shuffled (by reversing) go through the general path: the same spans.
      expect(compactForwards([...run].reverse()).spans).toEqual(want);
      if (stray) {
        const extra: Forward = { protocol, hostPort: 1, containerPort: 2 };
        const c = compactForwards([...run, extra]);
        expect(c.singles).toEqual(first === 1 ? [] : [extra]);
      }
    }), { numRuns: 200, seed: SEED });
  });

  it('compacts 65,535 forwards quickly (no quadratic step)', () => {
    const forwards = Array.from({ length: 65535 }, (_, i) => udp(i + 1, i % 7 === 0 ? 1 : i + 1));
    const c = compactForwards(forwards);
    expect(keySet(expandForwards(c))).toEqual(keySet(forwards));
  });
});

describe('interval helpers', () => {
  it('protocolIntervals merges spans and singles of one protocol across host addresses', () => {
    const c = compactForwards([
      ...Array.from({ length: 10 }, (_, i) => udp(100 + i)),
      ...Array.from({ length: 10 }, (_, i) => udp(105 + i, 105 + i, '192.0.2.1')),
      udp(116, 53), udp(300, 53), { protocol: 'tcp', hostPort: 200, containerPort: 200 },
    ]);
    expect(protocolIntervals(c, 'udp')).toEqual([{ first: 100, last: 114 }, { first: 116, last: 116 }, { first: 300, last: 300 }]);
    expect(protocolIntervals(c, 'tcp')).toEqual([{ first: 200, last: 200 }]);
  });

  it('spanForwards lists each port once', () => {
    expect(spanForwards({ protocol: 'tcp', first: 3, last: 5, hostIP: '192.0.2.1' }).map((f) => f.hostPort)).toEqual([3, 4, 5]);
  });

  it('subtractIntervals splits around cuts, inside, at the edges and over the whole', () => {
    expect(subtractIntervals(10, 20, [{ first: 13, last: 15 }])).toEqual([{ first: 10, last: 12 }, { first: 16, last: 20 }]);
    expect(subtractIntervals(10, 20, [{ first: 5, last: 10 }, { first: 20, last: 30 }])).toEqual([{ first: 11, last: 19 }]);
    expect(subtractIntervals(10, 20, [{ first: 1, last: 100 }])).toEqual([]);
    expect(subtractIntervals(10, 20, [{ first: 30, last: 40 }])).toEqual([{ first: 10, last: 20 }]);
    expect(subtractIntervals(10, 20, [{ first: 14, last: 14 }, { first: 12, last: 16 }])).toEqual([{ first: 10, last: 11 }, { first: 17, last: 20 }]);
  });

  it('property: subtractIntervals keeps exactly the ports not cut', () => {
    const iv = fc.tuple(fc.integer({ min: 1, max: 80 }), fc.integer({ min: 0, max: 20 })).map(([a, n]) => ({ first: a, last: a + n }));
    fc.assert(fc.property(iv, fc.array(iv, { maxLength: 5 }), (whole, cuts) => {
      const left = subtractIntervals(whole.first, whole.last, cuts);
      const ports = left.flatMap((x) => Array.from({ length: x.last - x.first + 1 }, (_, i) => x.first + i));
      const want: number[] = [];
      for (let p = whole.first; p <= whole.last; p++) if (!cuts.some((c) => p >= c.first && p <= c.last)) want.push(p);
      expect(ports).toEqual(want);
      for (const x of left) expect(cuts.some((c) => overlaps(c, x))).toBe(false);
    }), { numRuns: 300, seed: SEED });
  });

  it('multiportChunks counts a range as two of the fifteen', () => {
    const chunks = multiportChunks([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13], [{ first: 100, last: 200 }, { first: 300, last: 301 }]);
    expect(chunks).toEqual([['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12', '13', '100:200'], ['300:301']]);
    const ranges = multiportChunks([], Array.from({ length: 8 }, (_, i) => ({ first: i * 10 + 1, last: i * 10 + 5 })));
    expect(ranges.map((c) => c.length)).toEqual([7, 1]);
    expect(multiportChunks([1], [{ first: 5, last: 6 }], 15)).toEqual([['1', '5:6']]);
  });
});
