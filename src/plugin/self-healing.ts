/**
 * Wires the records into a call: the backend's self-healing gets the live attachments from the
 * records (read only when the call finds our node-wide state gone), and record writes never fail a
 * call whose firewall change succeeded (a record that cannot be written is logged: that attachment
 * cannot be restored after a reload, everything else works).
 */
import type { Backend } from '../backends/backend.js';
import { log } from '../host/log.js';
import type { Attachment } from '../portmap/config.js';
import { validOwnerIds } from '../portmap/plan.js';
import type { Plan } from '../portmap/plan.js';
import { planOfRecord, recordName } from '../portmap/record.js';
import type { RecordStore, StoredRecord } from './records.js';

/** Oldest first: when two live attachments claim one host port, the newest one wins, as with ADDs. */
export const byAge = (a: StoredRecord, b: StoredRecord): number => a.record.created - b.record.created;

/**
 * The live records of `backend` as plans (oldest first), except the owner `exclude`; removes the records
 * of pods that are gone on the way. For a CNI call that found our node-wide state gone (the lock is held).
 */
export function livePlans(store: RecordStore, backend: Backend['name'], exclude?: string): Plan[] {
  const { records } = store.list();
  const { live, dead } = store.sort(records);
  for (const d of dead) {
    log.info(`removing the record of ${recordName(d.record)}: ${d.reason}`);
    store.remove(d.id);
  }
  return live
    .filter((r) => r.record.backend === backend && r.id !== exclude)
    .sort(byAge)
    .map((r) => planOfRecord(r.record));
}


/** Lets `backend` restore the live attachments of `store` (the backend puts the call's own plan last). */
export function selfHealing(backend: Backend, store: RecordStore): void {
  backend.heal = () => livePlans(store, backend.name);
}

export function keepRecord(write: () => unknown): void {
  try {
    write();
  } catch (err) {
    log.warn(`attachment record not kept (its hostPorts cannot be restored after a firewall reload): ${(err as Error).message}`);
  }
}

/** GC: removes the records of `network` whose attachment the runtime no longer lists. */
export function pruneRecords(store: RecordStore, network: string, attachments: readonly Attachment[]): void {
  const valid = validOwnerIds(network, attachments);
  keepRecord(() => {
    for (const r of store.list().records) {
      if (r.record.network === network && !valid.has(r.id)) {
        log.info(`GC: removing the record of ${network}/${r.record.containerID}/${r.record.ifname}`);
        store.remove(r.id);
      }
    }
  });
}
