/**
 * One line per CNI call, at info level (error when it failed), around every verb (plugin.ts):
 *
 *   ... info: ADD network=podnet containerID=5f2c... ifname=eth0 pod=default/web-0 mappings=8080->80/tcp backend=nftables path=fast ms=31 outcome=ok
 *   ... error: ADD network=podnet containerID=5f2c... ifname=eth0 ms=2 outcome=error code=7 msg="invalid value for logLevel: \"loud\"" details="..."
 *
 * The log is configured from the call's configuration first (its valid logging keys, even when
 * another key is invalid: that failure is then logged where the configuration says). The failed
 * call's line carries the CNI error object it prints (code, msg, details). VERSION logs nothing.
 */
import type { Call } from '../cni/skel.js';
import { type CmdArgs, podOfArgs } from '../cni/env.js';
import { type CniError, asCniError } from '../cni/errors.js';
import { type LogFields, configureLog, emit, log } from '../host/log.js';
import { type PortMapping, logSettingsOf } from '../portmap/config.js';
import { mappingText } from '../portmap/mapping-text.js';
import type { CallReport } from './call-plan.js';

/** What the line says about the call besides its outcome: who it is for, and what the verb reported. */
export interface CallFacts {
  verb: string;
  network?: string;
  args?: Partial<CmdArgs>;
  /** The configuration's mappings, once it is parsed. */
  mappings?: readonly PortMapping[];
  /** Filled in by the verb. */
  report: CallReport;
}

export function callFields(facts: CallFacts, ms: number | undefined, error?: CniError): LogFields {
  const { args = {}, report } = facts;
  const pod = args.args ? podOfArgs(args.args) : undefined;
  const mappings = facts.mappings && facts.mappings.length > 0 ? mappingText(facts.mappings) : undefined;
  return {
    verb: facts.verb,
    network: facts.network,
    containerID: args.containerId || undefined,
    ifname: args.ifname || undefined,
    pod: pod ? `${pod.namespace}/${pod.name}` : undefined,
    mappings: mappings?.text,
    mappingCount: mappings?.summarised ? mappings.count : undefined,
    backend: report.backend,
    path: report.path,
    ms,
    outcome: error ? 'error' : 'ok',
    code: error?.code,
    msg: error?.message,
    details: error?.details || undefined,
  };
}

const elapsed = (t0: number): number => Math.round(performance.now() - t0);

/**
 * Runs a verb and writes its line. `run` sets `facts.mappings` once it has parsed the configuration,
 * and the verb fills `facts.report`; a failure is logged with its CNI error and thrown on unchanged.
 */
export async function logged<T>(call: Call, run: (facts: CallFacts) => Promise<T>): Promise<T> {
  const t0 = performance.now();
  configureLog(logSettingsOf(call.config));
  const facts: CallFacts = { verb: call.args.command, network: call.config.name, args: call.args, report: {} };
  try {
    const out = await run(facts);
    emit('info', undefined, callFields(facts, elapsed(t0)));
    return out;
  } catch (err) {
    const e = asCniError(err);
    // An unexpected failure (code 999) keeps its stack for whoever turns debug on.
    if (e.code === 999 && err instanceof Error && err.stack) log.debug(`${call.args.command} failed: ${err.stack}`);
    emit('error', undefined, callFields(facts, elapsed(t0), e));
    throw err;
  }
}

/** A call refused before it reached a verb (its environment, its configuration's JSON or version). */
export function logRefused(err: CniError, call: { args: Partial<CmdArgs>; config?: Record<string, unknown> }): void {
  configureLog(call.config ? logSettingsOf(call.config) : {});
  const network = typeof call.config?.name === 'string' ? call.config.name : undefined;
  emit('error', undefined, callFields({ verb: call.args.command || 'unknown', ...(network ? { network } : {}), args: call.args, report: {} }, undefined, err));
}
