/**
 * What the verbs need from the node, in one place: the backend of a call, the lock, and the host
 * helpers around the firewall change. Unit tests pass fakes; the plugin runs with defaultDeps().
 */
import { CniError, ErrorCode } from '../cni/errors.js';
import { type UdpTarget, flushUdpEntries } from '../host/conntrack.js';
import { LockTimeoutError, withLock } from '../host/lock.js';
import { routeDevice } from '../host/route.js';
import { enableRouteLocalnet, readRouteLocalnet } from '../host/sysctl.js';
import { testpoint } from '../host/testpoint.js';
import type { Backend } from '../backends/backend.js';
import { DEFAULT_DATA_DIR, type PortmapConfig } from '../portmap/config.js';
import { backendFor } from './backend-choice.js';
import { RecordStore } from './records.js';

export interface PluginDeps {
  backendFor(config: PortmapConfig): Promise<Backend>;
  /** Runs fn holding the node-wide lock; a timeout rejects with LockTimeoutError. */
  withLock<T>(what: string, fn: () => Promise<T>): Promise<T>;
  routeDevice(address: string): Promise<string | undefined>;
  readRouteLocalnet(dev: string): Promise<boolean>;
  enableRouteLocalnet(dev: string): Promise<void>;
  /** Deletes the stale UDP conntrack entries of these host ports (host/conntrack.ts). */
  flushUdpConntrack(targets: readonly UdpTarget[], verb: 'ADD' | 'DEL'): Promise<void>;
  /** A no-op unless the crash tests ask to pause there (host/testpoint.ts). */
  testpoint(name: string): Promise<void>;
  /** The attachment records of the configuration's `dataDir`, scoped to this network namespace. */
  records(config: PortmapConfig): RecordStore;
}

export function defaultDeps(): PluginDeps {
  return {
    backendFor: (config) => backendFor(config),
    withLock: (what, fn) => withLock(what, fn),
    routeDevice: (address) => routeDevice(address),
    readRouteLocalnet,
    enableRouteLocalnet,
    flushUdpConntrack: async (targets, verb) => void (await flushUdpEntries(targets, verb)),
    testpoint,
    records: (config) => new RecordStore(config.dataDir ?? DEFAULT_DATA_DIR),
  };
}

/** The lock's timeout as the CNI error a runtime retries on (code 11, "try again later"). */
export async function locked<T>(deps: PluginDeps, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await deps.withLock(what, fn);
  } catch (err) {
    if (err instanceof LockTimeoutError) throw new CniError(ErrorCode.TryAgainLater, err.message, err.hint);
    throw err;
  }
}
