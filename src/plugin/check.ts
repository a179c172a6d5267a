/** CHECK: the backend's rules for this attachment, and route_localnet where localhost forwarding needs it. */
import { CniError, ErrorCode } from '../cni/errors.js';
import { type PortmapCall, planOf, requirePrevResult } from './call-plan.js';
import { type PluginDeps, locked } from './deps.js';
import { selfHealing } from './self-healing.js';
import { localnetDevice } from './host-effects.js';

export async function check(deps: PluginDeps, call: PortmapCall): Promise<void> {
  const prev = requirePrevResult(call);
  if (call.config.portMappings.length === 0) return;
  const plan = planOf(call, prev);
  if (plan.families.length === 0) return;
  const backend = await deps.backendFor(call.config);
  call.report.backend = backend.name;
  selfHealing(backend, deps.records(call.config));
  // Under the lock: a CHECK that finds our state gone restores it before checking.
  await locked(deps, `CHECK ${call.args.containerId}`, () => backend.check(plan));
  const dev = await localnetDevice(deps, plan);
  if (dev && !(await deps.readRouteLocalnet(dev))) {
    throw new CniError(ErrorCode.Internal, `route_localnet is off on ${dev}`, 'node -> 127.0.0.1:hostPort cannot reach the pod; a new ADD turns it on');
  }
}
