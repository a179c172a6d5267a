/** Gathers what the drift audit compares (cli/drift.ts): our records and the runtime's libcni cache. */
import { DEFAULT_CNI_CACHE_DIR } from '../../cni/cache.js';
import { DEFAULT_DATA_DIR } from '../../portmap/config.js';
import { readCacheDir } from '../../plugin/adopt.js';
import { RecordStore } from '../../plugin/records.js';
import type { DriftFacts } from './drift.js';
import { type Facts, allRows } from '../facts.js';
import { failure } from '../gather.js';

export interface DriftOptions {
  dataDir?: string;
  cniCacheDir?: string;
}

export function gatherDrift(facts: Facts, opts: DriftOptions): DriftFacts {
  const dataDir = opts.dataDir ?? DEFAULT_DATA_DIR;
  const cacheDir = opts.cniCacheDir ?? DEFAULT_CNI_CACHE_DIR;
  const store = new RecordStore(dataDir);
  let list: ReturnType<RecordStore['list']> = { records: [], invalid: [] };
  try {
    list = store.list();
  } catch (err) {
    facts.unreadable.push(failure("portmap's records", store.dir, err, false));
  }
  const sorted = store.sort(list.records);
  const records = [
    ...sorted.live.map((r) => ({ record: r.record, alive: true, file: r.file })),
    ...sorted.dead.map((r) => ({ record: r.record, alive: false, reason: r.reason, file: r.file })),
  ];
  let cache: DriftFacts['cache'] = [];
  try {
    const c = readCacheDir(cacheDir);
    cache = c.files.map((f) => ({ file: f.file, entry: f.entry, alive: f.alive }));
    for (const e of c.errors) facts.errors.push(`libcni cache ${e.file}: ${e.error}`);
  } catch (err) {
    facts.unreadable.push(failure("the runtime's libcni cache", cacheDir, err, false));
  }
  // Unless every source of rules was read, nothing is judged against the kernel (a pod's forwards may be
  // in the part that could not be read).
  const rulesRead = !facts.unreadable.some((f) => f.rules);
  return {
    ...(rulesRead ? { rows: allRows(facts) } : {}),
    records,
    invalidRecords: list.invalid,
    dataDir,
    cache,
    cacheDir,
    ...(facts.confFiles ? { confFiles: facts.confFiles } : {}),
  };
}
