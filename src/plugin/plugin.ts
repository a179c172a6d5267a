/** The portmap plugin's verbs for the protocol layer (cni/skel.ts): each parses its configuration first. */
import type { Call, PluginVerbs } from '../cni/skel.js';
import { parseConfig } from '../portmap/config.js';
import { add } from './add.js';
import type { PortmapCall } from './call-plan.js';
import { check } from './check.js';
import { del } from './del.js';
import { type PluginDeps, defaultDeps } from './deps.js';
import { gc } from './gc.js';
import { status } from './status.js';

const parsed = (call: Call): PortmapCall => ({ args: call.args, config: parseConfig(call.config) });

export function createPlugin(deps: PluginDeps = defaultDeps()): PluginVerbs {
  return {
    add: async (call) => add(deps, parsed(call)),
    del: async (call) => del(deps, parsed(call)),
    check: async (call) => check(deps, parsed(call)),
    gc: async (call) => gc(deps, parsed(call)),
    status: async (call) => status(deps, parsed(call)),
  };
}
