/** From a parsed call to its plan: the prevResult it needs, and the plan of config + addresses. */
import type { BackendName } from '../portmap/config.js';
import type { CallPath } from '../backends/backend.js';
import type { CmdArgs } from '../cni/env.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { type PrevResult, containerAddresses, parsePrevResult } from '../cni/result.js';
import type { PortmapConfig } from '../portmap/config.js';
import { type Plan, buildPlan, ownerFor } from '../portmap/plan.js';

/** What a verb tells the call's log line (plugin/call-log.ts) about how it went. */
export interface CallReport {
  backend?: BackendName;
  path?: CallPath;
}

/** One CNI call as the verbs see it: the environment, the validated configuration, and its report. */
export interface PortmapCall {
  args: CmdArgs;
  config: PortmapConfig;
  report: CallReport;
}

/** The prevResult of an ADD or CHECK, which cannot work without one. */
export function requirePrevResult(call: PortmapCall): PrevResult {
  const { config } = call;
  if (config.prevResult === undefined) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      call.args.command === 'CHECK' ? 'Required prevResult missing' : 'must be called as chained plugin',
      "portmap runs after a main plugin (bridge, ptp, ...) in a conflist; it needs that plugin's result",
    );
  }
  return parsePrevResult(config.prevResult, config.cniVersion);
}

export function planOf(call: PortmapCall, prev: PrevResult): Plan {
  const { config, args } = call;
  return buildPlan(config, ownerFor(config, args.containerId, args.ifname), containerAddresses(prev.result, args.ifname));
}
