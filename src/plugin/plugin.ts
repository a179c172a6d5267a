/**
 * The portmap plugin's verbs for the protocol layer (cni/skel.ts): each parses its configuration
 * first, and every call, whatever its outcome, writes one line to the log (call-log.ts).
 */
import type { Call, PluginVerbs } from '../cni/skel.js';
import { log } from '../host/log.js';
import { parseConfig } from '../portmap/config.js';
import { lintConfig } from '../portmap/config-lint.js';
import { add } from './add.js';
import type { PortmapCall } from './call-plan.js';
import { type CallFacts, logRefused, logged } from './call-log.js';
import { check } from './check.js';
import { del } from './del.js';
import { type PluginDeps, defaultDeps } from './deps.js';
import { gc } from './gc.js';
import { status } from './status.js';

/** Parses the configuration; what it ignores or reads differently is logged, never refused (see config-lint). */
function parsed(call: Call, facts: CallFacts): PortmapCall {
  const config = parseConfig(call.config);
  facts.mappings = config.portMappings;
  for (const w of lintConfig(call.config)) log.warn(`configuration of network ${config.name}: ${w.msg}`);
  return { args: call.args, config, report: facts.report };
}

export function createPlugin(deps: PluginDeps = defaultDeps()): PluginVerbs {
  return {
    add: (call) => logged(call, (facts) => add(deps, parsed(call, facts))),
    del: (call) => logged(call, (facts) => del(deps, parsed(call, facts))),
    check: (call) => logged(call, (facts) => check(deps, parsed(call, facts))),
    gc: (call) => logged(call, (facts) => gc(deps, parsed(call, facts))),
    status: (call) => logged(call, (facts) => status(deps, parsed(call, facts))),
    refused: (err, call) => logRefused(err, call),
  };
}
