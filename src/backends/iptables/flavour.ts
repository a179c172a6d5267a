/**
 * Which iptables flavour (nf_tables or legacy) the backend writes with.
 *
 * Rules, in order (the first that applies wins):
 *   1. our CNI-HOSTPORT-DNAT holds rules in exactly one flavour: stay there (never split attachments);
 *      warn when kube-proxy's rules are in the other one.
 *   2. kube-proxy's KUBE-SERVICES nat chain exists in exactly one flavour: use that one.
 *   3. our (empty) CNI-HOSTPORT-DNAT exists in exactly one flavour: use that one.
 *   4. the `iptables` on PATH.
 * Cost: the legacy nat table of the current network namespace exists only if /proc/net/ip_tables_names
 * lists it (reading it spawns nothing and, unlike running iptables-legacy, never creates the table).
 * When it does not and PATH's iptables is the nf_tables flavour, nothing needs probing; otherwise up to four
 * `iptables-<flavour> -t nat -S <chain> 1` run in parallel (a few ms; one chain, never the whole table).
 */
import { realpathSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { type Runner, run } from '../../host/exec.js';
import { log } from '../../host/log.js';
import { LEGACY_TABLES_FILE, legacyTables } from '../../host/xtables.js';
import type { Family } from '../../net/ip.js';
import { KUBE_SERVICES, TOP_DNAT } from './render.js';

export type FlavourName = 'nft' | 'legacy';

export interface Binaries {
  iptables: Record<Family, string>;
  restore: Record<Family, string>;
}

export interface Flavour {
  /** 'unknown': PATH's iptables is neither xtables-nft-multi nor xtables-legacy-multi (used as is). */
  name: FlavourName | 'unknown';
  bin: Binaries;
  /** Why this flavour was chosen, for logs and errors. */
  reason: string;
  /** Flavours whose nat table holds our CNI-HOSTPORT-DNAT (DEL and GC look there too). */
  present: FlavourName[];
  /** The flavour of the iptables on PATH (binaries of other flavours carry a -nft/-legacy suffix). */
  path: FlavourName | 'unknown';
}

export const IPT_TIMEOUT_MS = 20_000;
/** Seconds to wait for the xtables lock (legacy; nf_tables ignores it). */
export const LOCK_WAIT = '--wait=10';

export function binariesFor(name: FlavourName | 'unknown', pathFlavour: FlavourName | 'unknown'): Binaries {
  const suffix = name === pathFlavour || name === 'unknown' ? '' : `-${name}`;
  return {
    iptables: { 4: `iptables${suffix}`, 6: `ip6tables${suffix}` },
    restore: { 4: `iptables${suffix}-restore`, 6: `ip6tables${suffix}-restore` },
  };
}

/** The flavour of the `iptables` on PATH, from where its symlinks lead (no process is spawned). */
export function pathFlavour(path = process.env.PATH ?? ''): FlavourName | 'unknown' {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    let target: string;
    try {
      target = realpathSync(join(dir, 'iptables'));
    } catch {
      continue;
    }
    return flavourOfBinary(target);
  }
  return 'unknown';
}

export function flavourOfBinary(file: string): FlavourName | 'unknown' {
  const base = file.split('/').pop() ?? '';
  if (/nft/.test(base)) return 'nft';
  if (/legacy/.test(base)) return 'legacy';
  return 'unknown';
}

/** Whether a legacy (x_tables) nat table exists in this network namespace. */
export function legacyNatExists(file = LEGACY_TABLES_FILE[4]): boolean {
  return legacyTables(4, file).includes('nat');
}

export interface Probe {
  kube: boolean;
  /** CNI-HOSTPORT-DNAT exists */
  ours: boolean;
  /** CNI-HOSTPORT-DNAT holds at least one rule */
  oursUsed: boolean;
}

/** The pure decision (see the header). */
export function decide(path: FlavourName | 'unknown', probes: Partial<Record<FlavourName, Probe>>): { name: FlavourName | 'unknown'; reason: string; warning?: string } {
  const all = (['nft', 'legacy'] as const).filter((f) => probes[f]);
  const used = all.filter((f) => probes[f]!.oursUsed);
  const kube = all.filter((f) => probes[f]!.kube);
  const ours = all.filter((f) => probes[f]!.ours);
  const label = (f: FlavourName) => `iptables-${f}`;
  if (used.length === 1) {
    const f = used[0]!;
    const other = kube.length === 1 && kube[0] !== f ? kube[0] : undefined;
    return {
      name: f,
      reason: `${label(f)} holds our hostPort rules (${TOP_DNAT})`,
      ...(other
        ? { warning: `hostPort rules are in ${label(f)} but kube-proxy's ${KUBE_SERVICES} is in ${label(other)}: hostPorts may capture Service traffic; they stay in ${label(f)} until its hostPort pods are gone (rules are never split across flavours)` }
        : {}),
    };
  }
  if (kube.length === 1) return { name: kube[0]!, reason: `kube-proxy's ${KUBE_SERVICES} is in ${label(kube[0]!)}` };
  if (ours.length === 1) return { name: ours[0]!, reason: `${label(ours[0]!)} holds our ${TOP_DNAT} chain` };
  return { name: path, reason: path === 'unknown' ? 'the iptables on PATH' : `the iptables on PATH (${label(path)})` };
}

async function chainState(runner: Runner, bin: string, chain: string): Promise<{ exists: boolean; used: boolean }> {
  try {
    const res = await runner(bin, [LOCK_WAIT, '-t', 'nat', '-S', chain, '1'], { timeoutMs: IPT_TIMEOUT_MS, okCodes: [1] });
    return { exists: res.code === 0, used: res.code === 0 && res.stdout.trim() !== '' };
  } catch (err) {
    // Missing binary or no such table: nothing of ours or kube-proxy's is there.
    log.debug(`${bin} -t nat -S ${chain} 1: ${(err as Error).message}`);
    return { exists: false, used: false };
  }
}

async function probe(runner: Runner, name: FlavourName): Promise<Probe> {
  const bin = `iptables-${name}`;
  const [kube, ours] = await Promise.all([chainState(runner, bin, KUBE_SERVICES), chainState(runner, bin, TOP_DNAT)]);
  return { kube: kube.exists, ours: ours.exists, oursUsed: ours.used };
}

/** Chooses the flavour for this call (cheap; see the header). */
export async function detectFlavour(runner: Runner = run): Promise<Flavour> {
  const path = pathFlavour();
  const legacy = legacyNatExists();
  const probes: Partial<Record<FlavourName, Probe>> = {};
  if (path === 'unknown' && !legacy) {
    // An iptables we cannot classify and no legacy table: use it as is.
  } else if (!(path === 'nft' && !legacy)) {
    const jobs: Array<Promise<void>> = [probe(runner, 'nft').then((p) => void (probes.nft = p))];
    if (legacy) jobs.push(probe(runner, 'legacy').then((p) => void (probes.legacy = p)));
    await Promise.all(jobs);
  }
  const d = decide(path, probes);
  const present = (['nft', 'legacy'] as const).filter((f) => probes[f]?.ours);
  if (present.length === 0 && d.name !== 'unknown' && !probes[d.name]) present.push(d.name);
  if (d.warning) log.warn(d.warning);
  const msg = `iptables flavour: ${d.name} (${d.reason})`;
  if (d.name !== path) log.info(msg);
  else log.debug(msg);
  return { name: d.name, bin: binariesFor(d.name, path), reason: d.reason, present, path };
}
