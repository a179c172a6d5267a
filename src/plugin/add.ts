/** ADD: the prevResult passed on, the plan applied under the lock, then conntrack and route_localnet. */
import type { AddOutcome } from '../backends/backend.js';
import { podOfArgs } from '../cni/env.js';
import { convertResult } from '../cni/result.js';
import { log } from '../host/log.js';
import { type PortmapCall, planOf, requirePrevResult } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';
import { flushUdp, localnetDevice } from './host-effects.js';
import { keepRecord, selfHealing } from './self-healing.js';
import { takeoverWarnings } from './takeovers.js';

export async function add(deps: PluginDeps, call: PortmapCall): Promise<Record<string, unknown>> {
  const { config } = call;
  const prev = requirePrevResult(call);
  const result = convertResult(prev, config.cniVersion);
  if (config.portMappings.length === 0) return result;
  const plan = planOf(call, prev);
  if (plan.families.length === 0) return result;
  const backend = await deps.backendFor(config);
  call.report.backend = backend.name;
  const store = deps.records(config);
  selfHealing(backend, store);
  await deps.testpoint('add:before-lock');
  let device: Promise<string | undefined> | undefined;
  const pod = podOfArgs(call.args.args);
  let outcome: AddOutcome | undefined;
  await locked(deps, `ADD ${plan.owner.containerID}`, async () => {
    await deps.testpoint('add:locked');
    const applied = backend.add(plan);
    // Looked up and written while the backend's process runs (backend.add has started it by now).
    device = localnetDevice(deps, plan);
    keepRecord(() => store.write(plan, backend.name, call.args.netns, pod ? { pod } : {}));
    try {
      outcome = await applied;
    } catch (err) {
      // No record of an ADD that failed (the runtime DELs it next); a crash before this point leaves a
      // record whose rules the runtime's retried ADD or its DEL settles.
      keepRecord(() => store.remove(plan.owner.id));
      throw err;
    }
    await deps.testpoint('add:applied');
  });
  call.report.path = outcome?.path;
  const dev = await device;
  await deps.testpoint('add:unlocked');
  // Outside the lock: the previous holders' records are only read, for their pod names.
  for (const w of takeoverWarnings(outcome?.takeovers ?? [], { owner: plan.owner, pod }, (id) => store.get(id))) log.warn(w);
  await Promise.all([flushUdp(deps, plan), dev ? deps.enableRouteLocalnet(dev) : undefined]);
  await deps.testpoint('add:done');
  return result;
}
