/**
 * The records store: one JSON file per attachment (portmap/record.ts), in
 * `<dataDir>/netns-<dev>-<ino>/<owner id>.json`, scoped to the network namespace the plugin runs in
 * (its nsfs identity, host/netns.ts), so that one node namespace never restores another's attachments.
 * Written atomically (temp + rename, host/files.ts) by ADD, removed by DEL, pruned by GC and
 * `portmap restore`. Every write and removal runs under the portmap lock.
 *
 * Read API for other commands (`portmap uninstall` and friends): `readRecords(dataDir)` lists every
 * valid record of the current namespace, `readLiveRecords(dataDir)` only those whose pod's network
 * namespace still exists. Both are synchronous and never write.
 */
import { join } from 'node:path';
import type { PodName } from '../cni/env.js';
import { ageMs, isTempName, listDir, readJson, removeFile, writeFileAtomic } from '../host/files.js';
import { type Liveness, bootId, netnsAlive, netnsAt, ownNetns, scopeName } from '../host/netns.js';
import { type AttachmentRecord, parseRecord, recordId, recordOf } from '../portmap/record.js';
import type { Plan } from '../portmap/plan.js';
import { type BackendName, DEFAULT_DATA_DIR } from '../portmap/config.js';

export { DEFAULT_DATA_DIR };

export interface StoredRecord {
  id: string;
  file: string;
  record: AttachmentRecord;
}

export interface InvalidRecord {
  file: string;
  error: string;
}

export interface RecordList {
  records: StoredRecord[];
  invalid: InvalidRecord[];
}

export interface Sorted {
  live: StoredRecord[];
  dead: Array<StoredRecord & { reason: string }>;
}

/** Whether a record's pod still exists (its network namespace, in this boot). */
export function liveness(rec: AttachmentRecord, currentBoot = bootId()): Liveness {
  const id = rec.netns.dev !== undefined && rec.netns.ino !== undefined ? { dev: rec.netns.dev, ino: rec.netns.ino } : undefined;
  return netnsAlive(rec.netns.path, id, rec.bootId, currentBoot);
}

export class RecordStore {
  readonly dir: string;

  constructor(
    readonly dataDir: string = DEFAULT_DATA_DIR,
    scope: string = scopeName(ownNetns()),
  ) {
    this.dir = join(dataDir, scope);
  }

  pathOf(id: string): string {
    return join(this.dir, `${id}.json`);
  }

  /** Records what ADD programmed for `plan` in `backend` (netnsPath: CNI_NETNS). */
  write(plan: Plan, backend: BackendName, netnsPath: string, extra: { adopted?: boolean; pod?: PodName } = {}): AttachmentRecord {
    const ns = netnsAt(netnsPath);
    const rec = recordOf(plan, {
      backend,
      netns: { path: netnsPath, ...(ns ? { dev: ns.dev, ino: ns.ino } : {}) },
      bootId: bootId(),
      now: Date.now(),
      ...extra,
    });
    this.put(rec);
    return rec;
  }

  put(rec: AttachmentRecord): void {
    writeFileAtomic(this.pathOf(recordId(rec)), JSON.stringify(rec));
  }

  /** Removes the record of an owner id; true when there was one. */
  remove(id: string): boolean {
    return removeFile(this.pathOf(id));
  }

  get(id: string): AttachmentRecord | undefined {
    const r = readJson(this.pathOf(id), parseRecord);
    return r?.ok ? r.value : undefined;
  }

  /** Whether any record file exists (one readdir; no file is read). */
  any(): boolean {
    return listDir(this.dir).some((n) => n.endsWith('.json'));
  }

  /** Every record file of this namespace, validated; a file whose name is not its record's owner id is invalid. */
  list(): RecordList {
    const out: RecordList = { records: [], invalid: [] };
    for (const name of listDir(this.dir)) {
      if (!name.endsWith('.json')) continue;
      const file = join(this.dir, name);
      const r = readJson(file, parseRecord);
      if (!r) continue; // removed meanwhile
      const id = name.slice(0, -'.json'.length);
      if (!r.ok) out.invalid.push({ file, error: r.error });
      else if (recordId(r.value) !== id) out.invalid.push({ file, error: `named ${id}, but holds the record of ${recordId(r.value)}` });
      else out.records.push({ id, file, record: r.value });
    }
    return out;
  }

  /** Splits records into those of live pods and dead ones (with the reason). */
  sort(records: readonly StoredRecord[], currentBoot = bootId()): Sorted {
    const out: Sorted = { live: [], dead: [] };
    for (const r of records) {
      const l = liveness(r.record, currentBoot);
      if (l.alive) out.live.push(r);
      else out.dead.push({ ...r, reason: l.reason });
    }
    return out;
  }

  /** Removes temporary files of writers that died (older than a minute). */
  removeStaleTemps(now = Date.now()): number {
    let n = 0;
    for (const name of listDir(this.dir)) {
      if (!isTempName(name)) continue;
      const file = join(this.dir, name);
      if ((ageMs(file, now) ?? 0) > 60_000 && removeFile(file)) n++;
    }
    return n;
  }
}

/** Every valid record of the current network namespace (read only). */
export function readRecords(dataDir: string = DEFAULT_DATA_DIR): AttachmentRecord[] {
  return new RecordStore(dataDir).list().records.map((r) => r.record);
}

/** The records whose pod's network namespace still exists (read only): what `portmap restore` re-creates. */
export function readLiveRecords(dataDir: string = DEFAULT_DATA_DIR): AttachmentRecord[] {
  const store = new RecordStore(dataDir);
  return store.sort(store.list().records).live.map((r) => r.record);
}
