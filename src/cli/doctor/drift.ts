/**
 * The drift audit of `portmap doctor` (pure): what the runtime asked for (its libcni cache) and what
 * portmap recorded, against the forwards the kernel holds. Finds pods whose hostPorts are not forwarded
 * (rules flushed, taken over by another pod, portmap not chained in that pod's conflist), forwards and
 * records of pods that are gone, and the configuration mistakes that make hostPort a silent no-op.
 */
import type { CacheEntry } from '../../cni/cache.js';
import { DEFAULT_CNI_CACHE_DIR, portmapConfigOf, portmapInList } from '../../cni/cache.js';
import { DEFAULT_DATA_DIR, parseConfig } from '../../portmap/config.js';
import { containerAddresses, parsePrevResult } from '../../cni/result.js';
import type { Family } from '../../net/ip.js';
import { type Plan, buildPlan, ownerFor } from '../../portmap/plan.js';
import { type AttachmentRecord, planOfRecord, recordId, recordName } from '../../portmap/record.js';
import type { Finding } from './finding.js';
import type { ConfFile, IptSource } from '../facts.js';
import { commandLine } from '../format.js';
import type { ListRow } from '../rows.js';
import { runtimeView } from './conflists.js';
import { removalCommands } from './describe.js';

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
  /** Its record, when it has one (when it was made, the pod's name). */
  record?: AttachmentRecord;
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
  /** How to run this executable, for the commands of the fixes (default "portmap"). */
  self?: string;
  /** The iptables nat tables read, for the commands that remove a forward. */
  iptables?: readonly IptSource[];
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
      network: rec.network, containerID: rec.containerID, ifname: rec.ifname, from: ['record'], forwards: forwardsOfRecord(rec), record: rec,
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

/** Whether a row covers a wanted host port: the same port, or a range holding it (the kernel keeps ranges as one). */
const sameKey = (r: ListRow, f: WantedForward): boolean =>
  r.family === f.family && String(r.protocol) === f.protocol && f.hostPort >= r.hostPort && f.hostPort <= (r.lastHostPort ?? r.hostPort) &&
  (r.hostIP ?? undefined) === (f.hostIP ?? undefined);

/** The container port a row forwards a host port to (a range keeps the offset). */
const containerPortOf = (r: ListRow, hostPort: number): number => r.containerPort + (hostPort - r.hostPort);

const label = (f: WantedForward): string => `${f.protocol}/${f.hostPort}${f.hostIP ? ` on ${f.hostIP}` : ''}${f.family === 6 ? ' (IPv6)' : ''}`;
/** "8080/tcp", as Kubernetes writes a hostPort. */
const portLabel = (f: WantedForward): string => `${f.hostPort}/${f.protocol}${f.hostIP ? ` on ${f.hostIP}` : ''}${f.family === 6 ? ' (IPv6)' : ''}`;
const ownerLabel = (r: ListRow): string =>
  r.containerID ? `${r.network ? `${r.network}/` : ''}${r.containerID}${r.ifname ? `/${r.ifname}` : ''} (${r.podIP})` : `pod ${r.podIP}`;

/** `portmap restore` with the directories doctor was given. */
export function restoreCommand(facts: Pick<DriftFacts, 'self' | 'dataDir' | 'cacheDir'>): string {
  return commandLine([
    facts.self ?? 'portmap', 'restore',
    ...(facts.dataDir !== DEFAULT_DATA_DIR ? ['--data-dir', facts.dataDir] : []),
    ...(facts.cacheDir !== DEFAULT_CNI_CACHE_DIR ? ['--cni-cache-dir', facts.cacheDir] : []),
  ]);
}

/** "pod default/web (podnet/c1/eth0, 10.244.0.5)", or "podnet/c1/eth0 (10.244.0.5)" without a pod name. */
function partyName(ids: { network?: string; containerID?: string; ifname?: string }, podIP: string | undefined, rec?: AttachmentRecord): string {
  const id = ids.containerID ? `${ids.network ? `${ids.network}/` : ''}${ids.containerID}${ids.ifname ? `/${ids.ifname}` : ''}` : undefined;
  const inner = [id, podIP].filter(Boolean).join(', ');
  if (rec?.pod) return `pod ${rec.pod.namespace}/${rec.pod.name}${inner ? ` (${inner})` : ''}`;
  return id ? `${id}${podIP ? ` (${podIP})` : ''}` : `pod ${podIP ?? '?'}`;
}

const when = (rec: AttachmentRecord): string => new Date(rec.created).toISOString().replace(/\.000Z$/, 'Z');
const since = (rec: AttachmentRecord | undefined): string => (rec ? ` since ${when(rec)}` : '');
/** "pod shop/web-a", or "podnet/c1/eth0": a party named again. */
const shortName = (ids: { network?: string; containerID?: string; ifname?: string }, rec?: AttachmentRecord): string =>
  rec?.pod ? `pod ${rec.pod.namespace}/${rec.pod.name}` : partyName(ids, undefined);

/** The record of the attachment a row forwards to (alive or not), by its owner id or its names. */
function recordOfRow(facts: Pick<DriftFacts, 'records'>, r: ListRow): RecordFact | undefined {
  return facts.records.find((x) =>
    (r.ownerId !== undefined && recordId(x.record) === r.ownerId) ||
    (r.containerID !== undefined && x.record.containerID === r.containerID && (r.network === undefined || x.record.network === r.network) &&
      (r.ifname === undefined || x.record.ifname === r.ifname)));
}

const kubectlDelete = (rec: AttachmentRecord | undefined): string | undefined =>
  rec?.pod ? commandLine(['kubectl', '--namespace', rec.pod.namespace, 'delete', 'pod', rec.pod.name]) : undefined;

/** A pod's hostPorts that the kernel forwards to another attachment: taken over, or held by a gone pod's leftovers. */
function takeoverFinding(facts: DriftFacts, w: PodWant, winner: ListRow, list: readonly WantedForward[]): Finding {
  const ports = list.map(portLabel).join(', ');
  const many = list.length > 1;
  const held = partyName(w, list[0]!.podIP, w.record);
  const bRecord = recordOfRow(facts, winner);
  const now = partyName(winner, winner.podIP, bRecord?.record);
  const gone = goneOf(facts, winner);
  if (gone) {
    return {
      id: 'hostport-held-by-gone-pod',
      severity: 'error',
      message: `hostPort${many ? 's' : ''} ${ports} ${many ? 'are' : 'is'} wanted by ${held}${since(w.record)}, but the kernel forwards ` +
        `${many ? 'them' : 'it'} to ${now}, whose pod is gone (${gone.reason}): ${held} receives nothing on ${many ? 'them' : 'it'}.`,
      fix: `Remove the gone pod's forward (a CNI GC of network ${winner.network ?? '<network>'} does, or the commands below), ` +
        `then run "portmap restore", which gives the port${many ? 's' : ''} back to ${held}.`,
      commands: [...removalCommands(winner, facts.iptables), restoreCommand(facts)],
    };
  }
  const older = kubectlDelete(w.record);
  const [a, b] = [shortName(w, w.record), shortName(winner, bRecord?.record)];
  return {
    id: 'hostport-taken-over',
    severity: 'warning',
    message: `hostPort${many ? 's' : ''} ${ports} ${many ? 'were' : 'was'} held by ${held}${since(w.record)}; now ` +
      `${now} has ${many ? 'them' : 'it'}${bRecord ? `, since ${when(bRecord.record)}` : ''}: two pods ask for the same host ` +
      `port, the newer ADD took it over, and ${a} receives nothing on ${many ? 'them' : 'it'}.`,
    fix: `Only one pod can have a host port: delete the older pod (${a}), or change its hostPort. To give the ` +
      `port back to ${a} instead, delete ${b} and recreate ${a}.`,
    ...(older ? { commands: ['# delete the older pod:', older] } : {}),
  };
}

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
    const taken = new Map<string, { winner: ListRow; list: WantedForward[] }>();
    for (const f of w.forwards) {
      const same = rows.filter((r) => sameKey(r, f));
      if (same.some((r) => (f.podIP === undefined || r.podIP === f.podIP) && containerPortOf(r, f.hostPort) === f.containerPort)) continue;
      if (same.length === 0) missing.push(f);
      else {
        // One finding per attachment that took them (its IPv4 and IPv6 forwards together).
        const w0 = same[0]!;
        const by = w0.ownerId ?? (w0.containerID ? `${w0.network ?? ''}/${w0.containerID}/${w0.ifname ?? ''}` : w0.podIP);
        const t = taken.get(by) ?? { winner: w0, list: [] };
        t.list.push(f);
        taken.set(by, t);
      }
    }
    if (missing.length > 0) {
      out.push({
        id: 'hostport-not-forwarded',
        severity: 'error',
        message: `Pod ${name} has hostPorts ${missing.map(label).join(', ')} that the kernel does not forward: their rules are gone (a firewall reload or a flush of the ruleset removes them; known from its ${w.from.join(' and ')}).`,
        fix: 'Run "portmap restore" (it re-creates them from the records and the libcni cache); "portmap watch" ' +
          '(contrib/systemd/portmap-watch.service) restores them within a second whenever they vanish.',
        commands: [restoreCommand(facts)],
      });
    }
    for (const { winner, list } of taken.values()) out.push(takeoverFinding(facts, w, winner, list));
  }
  return out;
}

/** Forwards and records whose pod is gone. */
/**
 * Whether the pod a row forwards to is gone, and why: its record says so, or the runtime (whose libcni
 * cache holds entries, so "no entry" means "no pod") has no such attachment. undefined: alive or unknown.
 */
export function goneOf(facts: Pick<DriftFacts, 'records' | 'cache'>, r: ListRow, wants = podWants(facts)): { dead?: RecordFact; reason: string } | undefined {
  if (!r.containerID) return undefined;
  const id = `${r.network ?? ''}/${r.containerID}`;
  if (wants.some((w) => `${w.network}/${w.containerID}` === id)) return undefined;
  const dead = facts.records.find((x) => !x.alive && `${x.record.network}/${x.record.containerID}` === id);
  if (dead) return { dead, reason: dead.reason ?? 'its network namespace is gone' };
  const cacheInUse = facts.cache.length > 0;
  if (cacheInUse && r.network !== undefined && !facts.cache.some((c) => c.entry.containerId === r.containerID)) {
    return { reason: 'the runtime has no such attachment in its libcni cache' };
  }
  return undefined;
}

export function checkGone(facts: DriftFacts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const wants = podWants(facts);
  const deadRecords = facts.records.filter((r) => !r.alive);
  const seen = new Set<string>();
  for (const r of rows) {
    const id = `${r.network ?? ''}/${r.containerID}`;
    if (seen.has(id)) continue;
    const gone = goneOf(facts, r, wants);
    if (!gone) continue;
    const dead = gone.dead;
    seen.add(id);
    out.push({
      id: 'forward-of-gone-pod',
      severity: 'warning',
      message: `Host port ${r.protocol}/${r.hostPort} forwards to ${ownerLabel(r)}, whose pod is gone (${gone.reason}).`,
      fix: `A CNI GC of network ${r.network ?? '<network>'} removes it (the runtime runs one when it starts), and so does a ` +
        `CNI DEL of that attachment; by hand, the commands below${dead ? '; "portmap restore" then removes its record' : ''}.`,
      commands: [...removalCommands(r, facts.iptables), ...(dead ? [restoreCommand(facts)] : [])],
    });
  }
  for (const r of deadRecords) {
    out.push({
      id: 'record-of-gone-pod',
      severity: 'warning',
      message: `The record ${r.file} is of ${recordName(r.record)}, whose pod is gone (${r.reason ?? 'its network namespace is gone'}); it is never restored.`,
      fix: `Run "portmap restore", which removes records of pods that are gone (so does the next CNI GC of network ${r.record.network}).`,
      commands: [restoreCommand(facts)],
    });
  }
  for (const r of facts.invalidRecords) {
    out.push({
      id: 'record-invalid',
      severity: 'warning',
      message: `The record ${r.file} is unreadable (${r.error}); its attachment cannot be restored from it.`,
      fix: 'Remove the file; "portmap restore" adopts the attachment again from the libcni cache if the runtime lists it.',
      commands: [commandLine(['rm', r.file]), restoreCommand(facts)],
    });
  }
  return out;
}

/** The conflist the runtime loads chains no portmap, while another file does or pods ask for hostPorts. */
export function checkSilentNoOps(facts: Pick<DriftFacts, 'confFiles' | 'cache'>): Finding[] {
  const view = runtimeView(facts.confFiles);
  if (view.loaded === undefined) return [];
  const chainsPortmap = (doc: Record<string, unknown> | undefined) => portmapInList(doc).plugin !== undefined;
  const loaded = view.entries[view.loaded]!;
  if (chainsPortmap(loaded.doc)) return [];
  const others = view.entries.filter((e, i) => i !== view.loaded && !e.broken && chainsPortmap(e.doc)).map((e) => e.file);
  const asked = facts.cache.some((c) => c.entry.portMappings.length > 0);
  if (others.length === 0 && !asked) return [];
  return [{
    id: 'loaded-conflist-without-portmap',
    severity: 'error',
    message: `The runtime loads ${loaded.file} (the first configuration file of the directory that loads), which chains no portmap${others.length ? `; ${others.join(', ')} ${others.length > 1 ? 'do' : 'does'} but ${others.length > 1 ? 'are' : 'is'} never loaded` : ''}: pods get no hostPorts.`,
    fix: `Chain { "type": "portmap", "capabilities": { "portMappings": true } } in ${loaded.file}, or rename the files so that the one with portmap sorts first; then recreate the pods that need hostPorts.`,
  }];
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

