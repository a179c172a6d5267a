/**
 * The drift audit of `portmap doctor` (pure): what the runtime asked for (its libcni cache) and what
 * portmap recorded, against the forwards the kernel holds. Finds pods whose hostPorts are not forwarded
 * (rules flushed, taken over by another pod, portmap not chained in that pod's conflist), forwards and
 * records of pods that are gone, and the configuration mistakes that make hostPort a silent no-op.
 */
import type { CacheEntry } from '../../cni/cache.js';
import { portmapConfigOf, portmapInList } from '../../cni/cache.js';
import { parseConfig } from '../../portmap/config.js';
import { containerAddresses, parsePrevResult } from '../../cni/result.js';
import type { Family } from '../../net/ip.js';
import { type Plan, buildPlan, ownerFor } from '../../portmap/plan.js';
import { type AttachmentRecord, planOfRecord, recordName } from '../../portmap/record.js';
import type { Finding } from './finding.js';
import type { ConfFile } from '../facts.js';
import type { ListRow } from '../rows.js';

/** A forward a pod asked for. */
export interface WantedForward {
  family: Family;
  protocol: string;
  hostPort: number;
  hostIP?: string;
  podIP?: string;
  containerPort: number;
}

export interface PodWant {
  network: string;
  containerID: string;
  ifname: string;
  /** Where we learnt of it. */
  from: Array<'record' | 'libcni cache'>;
  forwards: WantedForward[];
  /** Why portmap never saw its mappings (the cached conflist), when that is so. */
  notChained?: string;
}

export interface RecordFact {
  record: AttachmentRecord;
  alive: boolean;
  reason?: string;
  file: string;
}

export interface CacheFact {
  file: string;
  entry: CacheEntry;
  alive: boolean;
}

export interface DriftFacts {
  /** The kernel's forwards; undefined when they could not be read (no drift is judged then). */
  rows?: readonly ListRow[];
  records: readonly RecordFact[];
  invalidRecords: ReadonlyArray<{ file: string; error: string }>;
  dataDir: string;
  cache: readonly CacheFact[];
  cacheDir: string;
  confFiles?: readonly ConfFile[];
}

const podKey = (network: string, containerID: string, ifname: string): string => `${network}/${containerID}/${ifname}`;

/** The forwards a plan wants, one per family and port. */
function forwardsOfPlan(plan: Plan): WantedForward[] {
  return plan.families.flatMap((fp) =>
    fp.forwards.map((f) => ({
      family: fp.family,
      protocol: f.protocol,
      hostPort: f.hostPort,
      ...(f.hostIP ? { hostIP: f.hostIP } : {}),
      podIP: fp.pod.address,
      containerPort: f.containerPort,
    })),
  );
}

const forwardsOfRecord = (rec: AttachmentRecord): WantedForward[] => forwardsOfPlan(planOfRecord(rec));

/** What a cache entry's pod asked for, read the way portmap would have read it; or why it was not. */
export function wantOfCache(entry: CacheEntry): { forwards: WantedForward[]; notChained?: string } {
  if (entry.portMappings.length === 0) return { forwards: [] };
  const found = portmapInList(entry.config);
  const loose = (): WantedForward[] => {
    const out: WantedForward[] = [];
    for (const m of entry.portMappings) {
      if (typeof m !== 'object' || m === null) continue;
      const o = Object.fromEntries(Object.entries(m).map(([k, v]) => [k.toLowerCase(), v]));
      const hp = Number(o.hostport);
      if (!Number.isInteger(hp)) continue;
      out.push({ family: 4, protocol: String(o.protocol || 'tcp').toLowerCase(), hostPort: hp, containerPort: Number(o.containerport) });
    }
    return out;
  };
  if (entry.configError) return { forwards: loose(), notChained: entry.configError };
  if (!found.plugin) return { forwards: loose(), notChained: `its network ${entry.networkName} chains no portmap plugin` };
  if (!found.capability) {
    return { forwards: loose(), notChained: `its network ${entry.networkName} chains portmap without "capabilities": {"portMappings": true}` };
  }
  try {
    const raw = portmapConfigOf(entry)!;
    const config = parseConfig(raw);
    if (config.prevResult === undefined) return { forwards: [] };
    const prev = parsePrevResult(config.prevResult, config.cniVersion);
    const plan = buildPlan(config, ownerFor(config, entry.containerId, entry.ifName), containerAddresses(prev.result, entry.ifName));
    return { forwards: forwardsOfPlan(plan) };
  } catch (err) {
    return { forwards: [], notChained: `portmap rejects its configuration: ${(err as Error).message}` };
  }
}

/** The live pods that asked for hostPorts, from records and the libcni cache (pure). */
export function podWants(facts: Pick<DriftFacts, 'records' | 'cache'>): PodWant[] {
  const byKey = new Map<string, PodWant>();
  for (const r of facts.records) {
    if (!r.alive) continue;
    const rec = r.record;
    byKey.set(podKey(rec.network, rec.containerID, rec.ifname), {
      network: rec.network, containerID: rec.containerID, ifname: rec.ifname, from: ['record'], forwards: forwardsOfRecord(rec),
    });
  }
  for (const c of facts.cache) {
    if (!c.alive) continue;
    const e = c.entry;
    const key = podKey(e.networkName, e.containerId, e.ifName);
    const have = byKey.get(key);
    if (have) {
      have.from.push('libcni cache');
      continue;
    }
    const w = wantOfCache(e);
    if (w.forwards.length === 0 && !w.notChained) continue;
    if (e.portMappings.length === 0) continue;
    byKey.set(key, {
      network: e.networkName, containerID: e.containerId, ifname: e.ifName, from: ['libcni cache'], forwards: w.forwards,
      ...(w.notChained ? { notChained: w.notChained } : {}),
    });
  }
  return [...byKey.values()];
}

const sameKey = (r: ListRow, f: WantedForward): boolean =>
  r.family === f.family && String(r.protocol) === f.protocol && r.hostPort === f.hostPort && (r.hostIP ?? undefined) === (f.hostIP ?? undefined);

const label = (f: WantedForward): string => `${f.protocol}/${f.hostPort}${f.hostIP ? ` on ${f.hostIP}` : ''}${f.family === 6 ? ' (IPv6)' : ''}`;
const ownerLabel = (r: ListRow): string =>
  r.containerID ? `${r.network ? `${r.network}/` : ''}${r.containerID}${r.ifname ? `/${r.ifname}` : ''} (${r.podIP})` : `pod ${r.podIP}`;

/** Pods that asked for hostPorts which the kernel does not forward to them. */
export function checkUnforwarded(facts: DriftFacts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  for (const w of podWants(facts)) {
    const name = podKey(w.network, w.containerID, w.ifname);
    if (w.notChained) {
      out.push({
        id: 'hostport-not-chained',
        severity: 'error',
        message: `Pod ${name} asked for hostPorts ${[...new Set(w.forwards.map(label))].join(', ')}, but portmap never saw them: ${w.notChained} (libcni cache).`,
        fix: `Chain { "type": "portmap", "capabilities": { "portMappings": true } } after the main plugin in that network's conflist, then recreate the pod.`,
      });
      continue;
    }
    const missing: WantedForward[] = [];
    const taken = new Map<string, WantedForward[]>();
    for (const f of w.forwards) {
      const same = rows.filter((r) => sameKey(r, f));
      if (same.some((r) => (f.podIP === undefined || r.podIP === f.podIP) && r.containerPort === f.containerPort)) continue;
      if (same.length === 0) missing.push(f);
      else {
        const by = ownerLabel(same[0]!);
        taken.set(by, [...(taken.get(by) ?? []), f]);
      }
    }
    if (missing.length > 0) {
      out.push({
        id: 'hostport-not-forwarded',
        severity: 'error',
        message: `Pod ${name} has hostPorts ${missing.map(label).join(', ')} that the kernel does not forward: their rules are gone (a firewall reload or a flush of the ruleset removes them; known from its ${w.from.join(' and ')}).`,
        fix: `Run "portmap restore" (it re-creates them from the records and the libcni cache); run "portmap watch" (contrib/systemd/portmap-watch.service) to restore them automatically within a second.`,
      });
    }
    for (const [by, list] of taken) {
      out.push({
        id: 'hostport-taken-over',
        severity: 'error',
        message: `Pod ${name} has hostPorts ${list.map(label).join(', ')}, but they forward to ${by} instead: that pod took them over.`,
        fix: `Delete the pod that should not have them (if ${by} is stale, delete it or run a CNI GC), then run "portmap restore" or recreate ${name}.`,
      });
    }
  }
  return out;
}

/** Forwards and records whose pod is gone. */
export function checkGone(facts: DriftFacts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const live = new Set(podWants(facts).map((w) => `${w.network}/${w.containerID}`));
  const deadRecords = facts.records.filter((r) => !r.alive);
  const deadIds = new Map(deadRecords.map((r) => [`${r.record.network}/${r.record.containerID}`, r]));
  // The runtime uses the cache directory when it holds anything; only then can "no entry" mean "no pod".
  const cacheInUse = facts.cache.length > 0;
  const seen = new Set<string>();
  for (const r of rows) {
    if (!r.containerID) continue;
    const id = `${r.network ?? ''}/${r.containerID}`;
    if (live.has(id) || seen.has(id)) continue;
    const dead = deadIds.get(id);
    const unknown = !dead && cacheInUse && r.network !== undefined && !facts.cache.some((c) => c.entry.containerId === r.containerID);
    if (!dead && !unknown) continue;
    seen.add(id);
    out.push({
      id: 'forward-of-gone-pod',
      severity: 'warning',
      message: `Host port ${r.protocol}/${r.hostPort} forwards to ${ownerLabel(r)}, whose pod is gone (${dead ? dead.reason ?? 'its network namespace is gone' : 'the runtime has no such attachment in its libcni cache'}).`,
      fix: `Run a CNI GC for network ${r.network ?? '<network>'} (the runtime does it on start) or delete the pod's attachment with a CNI DEL; "portmap restore" removes its record.`,
    });
  }
  for (const r of deadRecords) {
    out.push({
      id: 'record-of-gone-pod',
      severity: 'warning',
      message: `The record ${r.file} is of ${recordName(r.record)}, whose pod is gone (${r.reason ?? 'its network namespace is gone'}); it is never restored.`,
      fix: `Run "portmap restore", which removes records of pods that are gone (so does the next CNI GC of network ${r.record.network}).`,
    });
  }
  for (const r of facts.invalidRecords) {
    out.push({
      id: 'record-invalid',
      severity: 'warning',
      message: `The record ${r.file} is unreadable (${r.error}); its attachment cannot be restored from it.`,
      fix: `Remove the file; "portmap restore" adopts the attachment again from the libcni cache if the runtime lists it.`,
    });
  }
  return out;
}

interface ConfDoc {
  plugins?: unknown;
  type?: unknown;
}

/** The conflist the runtime loads chains no portmap; a `.conf` file holds a `plugins` list. */
export function checkSilentNoOps(facts: Pick<DriftFacts, 'confFiles' | 'cache'>): Finding[] {
  const out: Finding[] = [];
  const files = (facts.confFiles ?? []).filter((f) => f.text !== undefined);
  const docs = files.map((f) => {
    try {
      return { f, doc: JSON.parse(f.text!) as ConfDoc };
    } catch {
      return { f, doc: undefined };
    }
  });
  for (const { f, doc } of docs) {
    if (f.file.endsWith('.conf') && doc && Array.isArray(doc.plugins)) {
      out.push({
        id: 'conf-holds-plugin-list',
        severity: 'error',
        message: `${f.file} holds a "plugins" list but ends in .conf: runtimes read a .conf file as one plugin, so the list (and any portmap in it) is ignored.`,
        fix: `Rename it to ${f.file.replace(/\.conf$/, '.conflist')}, then restart the runtime and recreate the pods that need hostPorts.`,
      });
    }
  }
  const valid = docs.filter((d) => d.doc !== undefined);
  const first = valid[0];
  if (!first) return out;
  const chainsPortmap = (d: ConfDoc | undefined) => portmapInList(d as Record<string, unknown>).plugin !== undefined;
  // A .conf file with a list is reported above.
  if (first.f.file.endsWith('.conf') && Array.isArray(first.doc?.plugins)) return out;
  if (chainsPortmap(first.doc)) return out;
  const others = valid.slice(1).filter((d) => chainsPortmap(d.doc)).map((d) => d.f.file);
  const asked = facts.cache.some((c) => c.entry.portMappings.length > 0);
  if (others.length === 0 && !asked) return out;
  out.push({
    id: 'loaded-conflist-without-portmap',
    severity: 'error',
    message: `The runtime loads ${first.f.file} (the lexically first file of the directory), which chains no portmap${others.length ? `; ${others.join(', ')} ${others.length > 1 ? 'do' : 'does'} but ${others.length > 1 ? 'are' : 'is'} never loaded` : ''}: pods get no hostPorts.`,
    fix: `Chain { "type": "portmap", "capabilities": { "portMappings": true } } in ${first.f.file}, or rename the files so that the one with portmap sorts first; then recreate the pods that need hostPorts.`,
  });
  return out;
}

/** Every drift check (pure). */
export function checkDrift(facts: DriftFacts): Finding[] {
  const rows = facts.rows;
  return [
    ...(rows ? checkUnforwarded(facts, rows) : []),
    ...(rows ? checkGone(facts, rows) : []),
    ...checkSilentNoOps(facts),
  ];
}

