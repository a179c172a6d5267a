/** The portmap plugin's verbs for the protocol layer (cni/skel.ts): each parses its configuration first. */
import type { Call, PluginVerbs } from '../cni/skel.js';
import { log } from '../host/log.js';
import { parseConfig } from '../portmap/config.js';
import { lintConfig } from '../portmap/config-lint.js';
import { add } from './add.js';
import type { PortmapCall } from './call-plan.js';
import { check } from './check.js';
import { del } from './del.js';
import { type PluginDeps, defaultDeps } from './deps.js';
import { gc } from './gc.js';
import { status } from './status.js';

/** Parses the configuration; what it ignores or reads differently is logged, never refused (see config-lint). */
function parsed(call: Call): PortmapCall {
  const config = parseConfig(call.config);
  for (const w of lintConfig(call.config)) log.warn(`configuration of network ${config.name}: ${w.msg}`);
  return { args: call.args, config };
}

export function createPlugin(deps: PluginDeps = defaultDeps()): PluginVerbs {
  return {
    add: async (call) => add(deps, parsed(call)),
    del: async (call) => del(deps, parsed(call)),
    check: async (call) => check(deps, parsed(call)),
    gc: async (call) => gc(deps, parsed(call)),
    status: async (call) => status(deps, parsed(call)),
  };
}
