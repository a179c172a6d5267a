/**
 * Attachments the runtime's libcni cache lists but that have no record (pods started under the
 * reference plugin, or before records existed): read from `<cni-cache-dir>` (default
 * /var/lib/cni/results), turned into plans the way the plugin reads its configuration, so that
 * `portmap restore` can adopt them and `portmap doctor` can audit them.
 */
import { join } from 'node:path';
import { type CacheEntry, parseCacheEntry, portmapConfigOf, portmapInList } from '../cni/cache.js';
import { parseConfig } from '../portmap/config.js';
import { containerAddresses, parsePrevResult } from '../cni/result.js';
import { ageMs, listDir, readText } from '../host/files.js';
import { bootTimeMs, netnsAt, ownNetns, sameNetns } from '../host/netns.js';
import { type Plan, buildPlan, ownerFor } from '../portmap/plan.js';
import type { BackendName } from '../portmap/config.js';
import { chooseBackend } from './backend-choice.js';

export interface CacheFile {
  file: string;
  entry: CacheEntry;
  /** Its pod's network namespace exists, is not ours, and the file was written in this boot. */
  alive: boolean;
  deadReason?: string;
}

export interface CacheDir {
  dir: string;
  files: CacheFile[];
  errors: Array<{ file: string; error: string }>;
}

/** Reads every cache file (synchronously; the files are small). */
export function readCacheDir(dir: string, now = Date.now()): CacheDir {
  const out: CacheDir = { dir, files: [], errors: [] };
  const boot = bootTimeMs(now);
  let own: ReturnType<typeof ownNetns> | undefined;
  try {
    own = ownNetns();
  } catch {
    own = undefined;
  }
  for (const name of listDir(dir)) {
    if (name.startsWith('.')) continue;
    const file = join(dir, name);
    let text: string | undefined;
    try {
      text = readText(file);
    } catch (err) {
      out.errors.push({ file, error: (err as Error).message });
      continue;
    }
    if (text === undefined) continue;
    let entry: CacheEntry;
    try {
      entry = parseCacheEntry(text);
    } catch (err) {
      out.errors.push({ file, error: (err as Error).message });
      continue;
    }
    const age = ageMs(file, now);
    let deadReason: string | undefined;
    const ns = entry.netns ? netnsAt(entry.netns) : undefined;
    if (!entry.netns) deadReason = 'the cache entry names no network namespace';
    else if (!ns) deadReason = `its network namespace ${entry.netns} is gone`;
    else if (sameNetns(ns, own)) deadReason = `${entry.netns} is the node's own network namespace`;
    else if (boot !== undefined && age !== undefined && now - age < boot - 1000) deadReason = 'the cache entry was written before this boot';
    out.files.push({ file, entry, alive: deadReason === undefined, ...(deadReason ? { deadReason } : {}) });
  }
  return out;
}

export type Adoption = { ok: true; plan: Plan; backend: BackendName; netns: string } | { ok: false; reason: string };

/** The plan portmap would have made for a cached attachment, or why there is none (pure but for the backend choice). */
export function adoptionOf(entry: CacheEntry): Adoption {
  if (entry.portMappings.length === 0) return { ok: false, reason: 'no port mappings' };
  const found = portmapInList(entry.config);
  if (entry.configError) return { ok: false, reason: entry.configError };
  if (!found.plugin) return { ok: false, reason: `network ${entry.networkName} chains no portmap plugin` };
  if (!found.capability) return { ok: false, reason: `network ${entry.networkName} chains portmap without the portMappings capability` };
  try {
    const config = parseConfig(portmapConfigOf(entry)!);
    if (config.prevResult === undefined) return { ok: false, reason: 'the cache entry holds no result' };
    const prev = parsePrevResult(config.prevResult, config.cniVersion);
    const plan = buildPlan(config, ownerFor(config, entry.containerId, entry.ifName), containerAddresses(prev.result, entry.ifName));
    if (plan.families.length === 0) return { ok: false, reason: 'no mapping applies to the pod addresses' };
    return { ok: true, plan, backend: chooseBackend(config), netns: entry.netns ?? '' };
  } catch (err) {
    return { ok: false, reason: `portmap rejects its configuration: ${(err as Error).message}` };
  }
}
