/** GC (CNI 1.1): removes this network's entries of attachments the runtime no longer lists. */
import type { PortmapCall } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';

export async function gc(deps: PluginDeps, call: PortmapCall): Promise<void> {
  const { config } = call;
  const backend = await deps.backendFor(config);
  const scope = {
    network: config.name,
    attachments: config.validAttachments ?? [],
    settings: { afterServices: config.afterServices, serviceCIDRs: config.serviceCIDRs },
  };
  await locked(deps, 'GC', () => backend.gc(scope));
}
