/** STATUS (CNI 1.1): whether the backend can serve ADD; code 50 with what to install or load when not. */
import { CniError, ErrorCode } from '../cni/errors.js';
import type { PortmapCall } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';
import { selfHealing } from './self-healing.js';

export async function status(deps: PluginDeps, call: PortmapCall): Promise<void> {
  let backend;
  try {
    backend = await deps.backendFor(call.config);
  } catch (err) {
    if (err instanceof CniError && err.code === ErrorCode.InvalidConfig) throw err;
    throw new CniError(ErrorCode.PluginNotAvailable, (err as Error).message, err instanceof CniError ? err.details : '');
  }
  call.report.backend = backend.name;
  const store = deps.records(call.config);
  // Only with records to restore does STATUS take the lock (its check may then write).
  if (!store.any()) return backend.status();
  selfHealing(backend, store);
  await locked(deps, 'STATUS', () => backend.status());
}
