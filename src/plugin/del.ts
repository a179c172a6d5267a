/** DEL: removes what the attachment holds; with mappings and a prevResult it knows exactly what ADD made. */
import { log } from '../host/log.js';
import type { Plan } from '../portmap/plan.js';
import { ownerFor } from '../portmap/plan.js';
import { type PortmapCall, planOf, requirePrevResult } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';
import { flushUdp } from './host-effects.js';
import { keepRecord, selfHealing } from './self-healing.js';

export async function del(deps: PluginDeps, call: PortmapCall): Promise<void> {
  const { config, args } = call;
  const owner = ownerFor(config, args.containerId, args.ifname);
  // Without mappings or a prevResult the backend looks the attachment up by its owner.
  let plan: Plan | undefined;
  try {
    if (config.portMappings.length > 0 && config.prevResult !== undefined) plan = planOf(call, requirePrevResult(call));
  } catch (err) {
    log.warn(`ignoring an unusable prevResult on DEL: ${(err as Error).message}`);
  }
  const backend = await deps.backendFor(config);
  call.report.backend = backend.name;
  const store = deps.records(config);
  selfHealing(backend, store);
  await deps.testpoint('del:before-lock');
  await locked(deps, `DEL ${args.containerId}`, async () => {
    await deps.testpoint('del:locked');
    // The record goes first: a DEL that dies halfway never leaves a record that would bring its rules back.
    keepRecord(() => store.remove(owner.id));
    call.report.path = await backend.del(owner, plan);
    await deps.testpoint('del:applied');
  });
  if (plan) await flushUdp(deps, plan, 'DEL');
}
