/**
 * Stale UDP conntrack entries, in a bounded number of processes whatever the number of ports.
 *
 * A UDP client that keeps sending from the same source port keeps its conntrack entry alive, and with
 * it the NAT decision of its first packet (an old pod, or no DNAT at all): the entries of a forwarded
 * UDP host port go on ADD and on DEL (the reference plugin's deletePortmapStaleConnections).
 *
 * conntrack(8) has no port-range filter, and each `-D` (also a line of `-R`, its batch mode) walks the
 * whole conntrack table, so one `-D` per port costs O(ports x table). Instead:
 *   - few ports (<= DIRECT_PORTS): one `conntrack -R <file>` whose lines delete per port: one process;
 *   - otherwise one `conntrack -L -p udp -f <family>` per family (in parallel), matched here against the
 *     ports, then one `conntrack -R <file>` deleting only the ports that have entries (nothing when none do).
 *     A DEL first deletes, in one line, the entries whose replies come from the pod (every flow DNATed
 *     to it), so that a busy server's thousands of flows cost one walk, not one per port; beyond
 *     MAX_PORT_LINES ports with entries, lines per address pair replace lines per port (linesForListing).
 * At most three processes per call; with conntrack older than 1.4.6 (no `-R`) one process per line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Family } from '../net/ip.js';
import { ipFamily } from '../net/ip.js';
import { CommandError, type Runner, run } from './exec.js';

/** The UDP host ports of one family in one CNI call, and the pod they forward to. */
export interface UdpTarget {
  family: Family;
  /** Inclusive intervals of host ports (a single port is [p, p]). */
  ports: ReadonlyArray<{ first: number; last: number }>;
  /** The pod's address: on DEL, the entries it answers are deleted in one line. */
  pod?: string;
}

/** One conntrack entry as `conntrack -L` prints it: the original and the reply tuple. */
export interface ConntrackEntry {
  origSrc: string;
  origDst: string;
  origSport: number;
  origDport: number;
  replySrc: string;
}

/** Up to this many ports, per-port deletes without a listing are cheaper. */
export const DIRECT_PORTS = 4;
const TIMEOUT_MS = 20_000;

const familyArg = (f: Family): string => (f === 4 ? 'ipv4' : 'ipv6');
const TUPLE = /src=(\S+) dst=(\S+) sport=(\d+) dport=(\d+)/g;

/** Parses `conntrack -L` output (pure). Lines without two tuples (summaries, other protocols) are skipped. */
export function parseListing(text: string): ConntrackEntry[] {
  const out: ConntrackEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('src=')) continue;
    const tuples = [...line.matchAll(TUPLE)];
    const [orig, reply] = tuples;
    if (!orig || !reply) continue;
    const [, origSrc, origDst, sport, dport] = orig;
    out.push({ origSrc: origSrc!, origDst: origDst!, origSport: Number(sport), origDport: Number(dport), replySrc: reply[1]! });
  }
  return out;
}

/** A lookup of the ports of a target: a bitmap over the port space. */
function portSet(ports: UdpTarget['ports']): Uint8Array {
  const set = new Uint8Array(65536);
  for (const { first, last } of ports) set.fill(1, Math.max(0, first), Math.min(65535, last) + 1);
  return set;
}

const portCount = (ports: UdpTarget['ports']): number => ports.reduce((n, p) => n + p.last - p.first + 1, 0);

const deletePort = (f: Family, port: number): string => `-D -p udp -f ${familyArg(f)} --orig-port-dst ${port}`;

/** `-R` lines for one target without a listing: one per port. */
export function directLines(t: UdpTarget): string[] {
  const lines: string[] = [];
  for (const { first, last } of t.ports) for (let p = first; p <= last; p++) lines.push(deletePort(t.family, p));
  return lines;
}

/** More per-port lines than this are coalesced (each line is one walk of the whole conntrack table). */
export const MAX_PORT_LINES = 64;

/**
 * `-R` lines that delete the listed entries of a target's ports (pure). `byPod` (DEL): first the entries
 * whose replies come from the pod, in one line. Then one line per port that still has entries; when
 * that would be more than MAX_PORT_LINES lines, one line per (original destination, reply source) pair
 * of those entries instead: a host address and the pod it was DNATed to, or the host address itself for
 * entries made before the forward existed. That also deletes other UDP entries of the same pair, which
 * the next packet of each flow re-creates; it keeps the time bounded when thousands of ports have entries
 * (a media server's clients that kept sending while the pod restarted).
 */
export function linesForListing(t: UdpTarget, entries: readonly ConntrackEntry[], byPod: boolean): string[] {
  const set = portSet(t.ports);
  const fam = familyArg(t.family);
  const matched = entries.filter((e) => e.origDport > 0 && e.origDport < 65536 && set[e.origDport] === 1);
  const lines: string[] = [];
  let rest = matched;
  const pod = t.pod;
  if (byPod && pod !== undefined && ipFamily(pod) === t.family && matched.some((e) => e.replySrc === pod)) {
    lines.push(`-D -p udp -f ${fam} --reply-src ${pod}`);
    rest = matched.filter((e) => e.replySrc !== pod);
  }
  const ports = [...new Set(rest.map((e) => e.origDport))].sort((a, b) => a - b);
  if (ports.length <= MAX_PORT_LINES) return [...lines, ...ports.map((p) => deletePort(t.family, p))];
  const pairs = new Set<string>();
  for (const e of rest) {
    // Addresses from conntrack's output go into a line only when they are addresses of the family.
    if (ipFamily(e.origDst) !== t.family || ipFamily(e.replySrc) !== t.family) continue;
    pairs.add(`-D -p udp -f ${fam} --orig-dst ${e.origDst} --reply-src ${e.replySrc}`);
  }
  return [...lines, ...[...pairs].sort()];
}

/** Whether conntrack refused `-R` itself (older than 1.4.6), rather than failing on an entry. */
const noBatchMode = (err: unknown): boolean =>
  err instanceof CommandError && err.kind === 'failed' && /unknown option|invalid option|Bad parameter|-R/i.test(err.stderr) && !/flow entries/.test(err.stderr);

/**
 * Runs delete lines in one `conntrack -R <file>`; one process per line where -R does not exist. A private
 * file, not stdin: conntrack opens /dev/stdin, which fails on the socket Node gives a child as stdin.
 */
async function runLines(lines: readonly string[], runner: Runner): Promise<void> {
  if (lines.length === 0) return;
  const dir = mkdtempSync(join(tmpdir(), 'cni-portmap-ct-'));
  try {
    const file = join(dir, 'delete.txt');
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    await runner('conntrack', ['-R', file], { okCodes: [1], timeoutMs: TIMEOUT_MS });
  } catch (err) {
    if (!noBatchMode(err)) throw err;
    for (const l of lines) await runner('conntrack', l.split(' '), { okCodes: [1], timeoutMs: TIMEOUT_MS });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Deletes the UDP conntrack entries to the host ports of `targets` (`verb` DEL also deletes, in one line,
 * the entries the pod answers). Resolves with the number of conntrack processes it ran.
 */
export async function flushUdpEntries(targets: readonly UdpTarget[], verb: 'ADD' | 'DEL', runner: Runner = run): Promise<number> {
  const live = targets.filter((t) => t.ports.length > 0);
  const total = live.reduce((n, t) => n + portCount(t.ports), 0);
  if (total === 0) return 0;
  if (total <= DIRECT_PORTS) {
    await runLines(live.flatMap(directLines), runner);
    return 1;
  }
  const listings = await Promise.all(
    live.map(async (t) => {
      const { stdout } = await runner('conntrack', ['-L', '-p', 'udp', '-f', familyArg(t.family)], { timeoutMs: TIMEOUT_MS });
      return linesForListing(t, parseListing(stdout), verb === 'DEL');
    }),
  );
  const lines = listings.flat();
  await runLines(lines, runner);
  return live.length + (lines.length > 0 ? 1 : 0);
}
