import { statSync } from 'node:fs';
import { type CmdArgs, parseEnv } from './env.js';
import { CniError, ErrorCode, asCniError } from './errors.js';
import { type CniVersion, LATEST_VERSION, isSupportedVersion, requireSupportedVersion, versionAtLeast } from './versions.js';

/** The network configuration as decoded: a named object, its cniVersion resolved (missing means 0.1.0). */
export type NetConf = Record<string, unknown> & { name: string; cniVersion: CniVersion };

/** One call: the environment and the raw configuration; the plugin parses its own keys. */
export interface Call {
  args: CmdArgs;
  config: NetConf;
}

/** What a plugin implements; the protocol layer does everything else. */
export interface PluginVerbs {
  add(call: Call): Promise<Record<string, unknown>>;
  del(call: Call): Promise<void>;
  check(call: Call): Promise<void>;
  gc(call: Call): Promise<void>;
  status(call: Call): Promise<void>;
  /**
   * Told of a call refused before it reached a verb (its environment, its configuration's JSON, its
   * version), with what was known of it: for the plugin's log. Must not throw.
   */
  refused?(err: CniError, call: { args: Partial<CmdArgs>; config?: Record<string, unknown> }): void;
}

export interface Io {
  env: NodeJS.ProcessEnv;
  stdin: () => Promise<string>;
  stdout: (text: string) => void;
}

const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Minimum config versions of the verbs that have one. */
const MIN_VERSION: Record<string, string> = { CHECK: '0.4.0', GC: '1.1.0', STATUS: '1.1.0' };

function decode(stdin: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(stdin);
  } catch (err) {
    const reason = stdin.trim() === '' ? 'unexpected end of JSON input' : (err as Error).message;
    throw new CniError(ErrorCode.DecodingFailure, `error unmarshall network config: ${reason}`);
  }
  if (value !== null && (typeof value !== 'object' || Array.isArray(value))) {
    throw new CniError(ErrorCode.DecodingFailure, 'error unmarshall network config: the network configuration must be a JSON object');
  }
  const obj = (value ?? {}) as Record<string, unknown>;
  const name = obj.name;
  if (name !== undefined && typeof name !== 'string') {
    throw new CniError(ErrorCode.DecodingFailure, 'error unmarshall network config: "name" must be a string');
  }
  if (!name) throw new CniError(ErrorCode.InvalidConfig, 'missing network name');
  if (!NAME_PATTERN.test(name)) throw new CniError(ErrorCode.InvalidConfig, 'invalid characters found in network name', name);
  return obj;
}

function configVersion(obj: Record<string, unknown>): string {
  const v = obj.cniVersion ?? '0.1.0';
  if (typeof v !== 'string') {
    throw new CniError(ErrorCode.DecodingFailure, 'decoding version from network config: "cniVersion" must be a string');
  }
  return v === '' ? '0.1.0' : v;
}

function checkVersionFor(command: string, version: string): void {
  const min = MIN_VERSION[command];
  if (min && !versionAtLeast(version, min)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `config version does not allow ${command}`, `${command} needs cniVersion ${min} or later, config is "${version}"`);
  }
  requireSupportedVersion(version);
}

/** skel's guard: CNI_NETNS must not be the namespace the plugin runs in (unless CNI_NETNS_OVERRIDE). */
function checkNetns(args: CmdArgs, env: NodeJS.ProcessEnv): void {
  const override = (env.CNI_NETNS_OVERRIDE ?? '').toLowerCase();
  if (override === 'true' || override === '1' || args.netns === '') return;
  let same: boolean;
  try {
    const own = statSync('/proc/self/ns/net');
    const target = statSync(args.netns);
    same = own.ino === target.ino && own.dev === target.dev;
  } catch {
    return; // A netns that cannot be opened (gone on DEL, say) is not our own.
  }
  if (same) throw new CniError(8, "plugin's netns and netns from CNI_NETNS should not be the same", args.netns);
}

/**
 * Runs one CNI call: validates env and stdin like the reference skel, dispatches the verb and prints
 * the result, or one error object. Returns the exit status.
 */
export async function runCni(io: Io, plugin: () => Promise<PluginVerbs>): Promise<number> {
  let errorVersion: string = LATEST_VERSION;
  let args: CmdArgs | undefined;
  let obj: Record<string, unknown> | undefined;
  let dispatched = false;
  try {
    args = parseEnv(io.env);
    obj = decode(await io.stdin());
    const version = configVersion(obj);
    if (isSupportedVersion(version)) errorVersion = version;
    const command = args.command;
    if (!['ADD', 'DEL', 'CHECK', 'GC', 'STATUS'].includes(command)) {
      throw new CniError(ErrorCode.InvalidEnvironment, `unknown CNI_COMMAND: ${command}`, 'CNI_COMMAND must be one of ADD, DEL, CHECK, GC, STATUS, VERSION');
    }
    checkVersionFor(command, version);
    // The version skel resolved (missing or empty means 0.1.0) is the one the config is read with.
    const config = { ...obj, cniVersion: version } as NetConf;
    if (command === 'ADD') checkNetns(args, io.env);
    const verbs = await plugin();
    const call: Call = { args, config };
    // From here the verb logs its own outcome (the plugin's call line).
    dispatched = true;
    switch (command) {
      case 'ADD': {
        const result = await verbs.add(call);
        io.stdout(JSON.stringify(result, null, 4));
        return 0;
      }
      case 'DEL':
        await verbs.del(call);
        return 0;
      case 'CHECK':
        await verbs.check(call);
        return 0;
      case 'GC':
        await verbs.gc(call);
        return 0;
      default:
        await verbs.status(call);
        return 0;
    }
  } catch (err) {
    const e = asCniError(err);
    if (!dispatched) await tellRefused(plugin, e, args ?? partialArgs(io.env), obj);
    io.stdout(JSON.stringify(e.toJSON(errorVersion), null, 4));
    return 1;
  }
}

/** The CNI variables as given, for the log of a call whose environment was refused. */
const partialArgs = (env: NodeJS.ProcessEnv): Partial<CmdArgs> => ({
  command: env.CNI_COMMAND ?? '',
  containerId: env.CNI_CONTAINERID ?? '',
  ifname: env.CNI_IFNAME ?? '',
  args: env.CNI_ARGS ?? '',
});

async function tellRefused(plugin: () => Promise<PluginVerbs>, err: CniError, args: Partial<CmdArgs>, config: Record<string, unknown> | undefined): Promise<void> {
  try {
    (await plugin()).refused?.(err, { args, ...(config ? { config } : {}) });
  } catch {
    // The answer on stdout matters; its log line does not.
  }
}
