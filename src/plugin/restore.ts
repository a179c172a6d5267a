/**
 * Restoring attachments from their records after a firewall reload wiped our rules: for `portmap
 * restore` (on demand), `portmap watch` (when the kernel reports a removal) and the self-healing of
 * every CNI call (when the call's own work finds our node-wide state gone).
 *
 * Only live attachments are restored: a record whose pod's network namespace is gone (or is from an
 * earlier boot) is removed instead. Each backend re-creates all of its attachments in one transaction
 * per family (Backend.restore), so a crash leaves the old state or the new one; the next call or
 * restore completes it. Everything here runs under the portmap lock.
 */
import type { Backend } from '../backends/backend.js';
import type { BackendName } from '../portmap/config.js';
import { withLock } from '../host/lock.js';
import { testpoint } from '../host/testpoint.js';
import { attachmentName, ownerOf } from '../portmap/owner.js';
import type { Plan } from '../portmap/plan.js';
import { planOfRecord, recordName } from '../portmap/record.js';
import { loadBackend } from './backend-choice.js';
import { adoptionOf, readCacheDir } from './adopt.js';
import { RecordStore } from './records.js';
import { byAge } from './self-healing.js';

export interface RestoreOptions {
  dataDir: string;
  /** The libcni cache directory to adopt attachments from; undefined: no adoption. */
  cacheDir?: string;
  /** Re-apply every live attachment even when nothing looks damaged. */
  force?: boolean;
  /** Only read and report; change nothing (no rules, no records). */
  dryRun?: boolean;
}

export interface RestoredItem {
  name: string;
  backend: BackendName;
  forwards: number;
  adopted?: boolean;
}

export interface SkippedItem {
  name: string;
  reason: string;
  /** The record was removed (its pod is gone). */
  removed?: boolean;
  file?: string;
}

export interface BackendOutcome {
  backend: BackendName;
  attachments: number;
  /** What was found wrong before restoring (empty: intact). */
  damage: string[];
  restored: boolean;
  error?: string;
}

export interface RestoreReport {
  restored: RestoredItem[];
  /** Live attachments whose rules were found intact (nothing re-applied). */
  intact: RestoredItem[];
  skipped: SkippedItem[];
  backends: BackendOutcome[];
  ok: boolean;
}

const forwardCount = (p: Plan): number => p.families.reduce((n, f) => n + f.forwards.length, 0);

async function restoreLocked(opts: RestoreOptions, load: (name: BackendName) => Promise<Backend>): Promise<RestoreReport> {
  const report: RestoreReport = { restored: [], intact: [], skipped: [], backends: [], ok: true };
  const store = new RecordStore(opts.dataDir);
  if (!opts.dryRun) store.removeStaleTemps();
  const { records, invalid } = store.list();
  for (const i of invalid) report.skipped.push({ name: i.file, reason: `unreadable record: ${i.error}`, file: i.file });
  const { live, dead } = store.sort(records);
  for (const d of dead) {
    if (!opts.dryRun) store.remove(d.id);
    report.skipped.push({ name: recordName(d.record), reason: `pod gone: ${d.reason}`, removed: !opts.dryRun, file: d.file });
  }
  const entries: Array<{ backend: BackendName; plan: Plan; adopted: boolean }> = live.sort(byAge).map((r) => ({
    backend: r.record.backend, plan: planOfRecord(r.record), adopted: r.record.adopted === true,
  }));

  if (opts.cacheDir !== undefined) {
    const known = new Set(records.map((r) => r.id));
    const cache = readCacheDir(opts.cacheDir);
    for (const f of cache.files) {
      const e = f.entry;
      if (e.portMappings.length === 0) continue;
      const name = `${e.networkName}/${e.containerId}/${e.ifName}`;
      if (known.has(ownerOf(e.networkName, e.containerId, e.ifName).id)) continue;
      if (!f.alive) {
        report.skipped.push({ name, reason: `not adopted from ${f.file}: ${f.deadReason ?? 'pod gone'}`, file: f.file });
        continue;
      }
      const a = adoptionOf(e);
      if (!a.ok) {
        report.skipped.push({ name, reason: `not adopted from ${f.file}: ${a.reason}`, file: f.file });
        continue;
      }
      if (!opts.dryRun) store.write(a.plan, a.backend, a.netns, { adopted: true });
      entries.push({ backend: a.backend, plan: a.plan, adopted: true });
    }
  }

  const names = [...new Set(entries.map((e) => e.backend))].sort();
  for (const name of names) {
    const mine = entries.filter((e) => e.backend === name);
    const plans = mine.map((e) => e.plan);
    const items = mine.map((e) => ({
      name: attachmentName(e.plan.owner),
      backend: name,
      forwards: forwardCount(e.plan),
      ...(e.adopted ? { adopted: true } : {}),
    }));
    const outcome: BackendOutcome = { backend: name, attachments: plans.length, damage: [], restored: false };
    report.backends.push(outcome);
    try {
      const backend = await load(name);
      if (opts.dryRun) outcome.damage = await backend.damage(plans);
      else {
        await testpoint('restore:apply');
        outcome.damage = await backend.restore(plans, { force: opts.force === true });
        outcome.restored = outcome.damage.length > 0 || opts.force === true;
      }
      if (outcome.damage.length === 0 && !opts.force) report.intact.push(...items);
      else report.restored.push(...items);
    } catch (err) {
      outcome.error = (err as Error).message;
      report.ok = false;
      for (const i of items) report.skipped.push({ name: i.name, reason: `the ${name} backend failed: ${outcome.error}` });
    }
  }
  return report;
}

/** `portmap restore` and `portmap watch`: under the lock, so safe beside concurrent CNI calls. */
export async function restoreAll(opts: RestoreOptions, load: (name: BackendName) => Promise<Backend> = loadBackend): Promise<RestoreReport> {
  return withLock('RESTORE', () => restoreLocked(opts, load));
}
