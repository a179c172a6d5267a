/** GC (CNI 1.1): removes this network's entries of attachments the runtime no longer lists. */
import type { PortmapCall } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';
import { pruneRecords, selfHealing } from './self-healing.js';

export async function gc(deps: PluginDeps, call: PortmapCall): Promise<void> {
  const { config } = call;
  const backend = await deps.backendFor(config);
  call.report.backend = backend.name;
  const scope = {
    network: config.name,
    attachments: config.validAttachments ?? [],
    settings: { afterServices: config.afterServices, serviceCIDRs: config.serviceCIDRs },
  };
  const store = deps.records(config);
  selfHealing(backend, store);
  await locked(deps, 'GC', async () => {
    pruneRecords(store, scope.network, scope.attachments);
    await backend.gc(scope);
  });
}
