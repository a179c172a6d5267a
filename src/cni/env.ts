import { CniError, ErrorCode } from './errors.js';

export const VERBS = ['ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION'] as const;

export interface CmdArgs {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  args: string;
  path: string;
}

type EnvName = 'CNI_COMMAND' | 'CNI_CONTAINERID' | 'CNI_NETNS' | 'CNI_IFNAME' | 'CNI_ARGS' | 'CNI_PATH';

/** Which verbs need each variable non-empty; the order is skel's, and so is the order of the error list. */
const REQUIRED: ReadonlyArray<[EnvName, keyof CmdArgs, readonly string[]]> = [
  ['CNI_COMMAND', 'command', VERBS],
  ['CNI_CONTAINERID', 'containerId', ['ADD', 'CHECK', 'DEL']],
  ['CNI_NETNS', 'netns', ['ADD', 'CHECK']],
  ['CNI_IFNAME', 'ifname', ['ADD', 'CHECK', 'DEL']],
  ['CNI_ARGS', 'args', []],
  ['CNI_PATH', 'path', ['ADD', 'CHECK', 'DEL', 'GC', 'STATUS']],
];

const ID_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function validateContainerId(id: string): void {
  if (!ID_PATTERN.test(id)) {
    throw new CniError(ErrorCode.InvalidEnvironment, 'invalid characters in containerID', id);
  }
}

export function validateInterfaceName(name: string): void {
  if (name === '') throw new CniError(ErrorCode.InvalidEnvironment, 'interface name is empty');
  if (Buffer.byteLength(name) > 15) {
    throw new CniError(ErrorCode.InvalidEnvironment, 'interface name is too long', 'interface name should be less than 16 characters');
  }
  if (name === '.' || name === '..') throw new CniError(ErrorCode.InvalidEnvironment, 'interface name is . or ..');
  if (/[/:\s]/.test(name)) {
    throw new CniError(ErrorCode.InvalidEnvironment, 'interface name contains / or : or whitespace characters');
  }
}

/** Reads the CNI variables the way the reference skel does (same checks, codes and messages). */
export function parseEnv(env: NodeJS.ProcessEnv): CmdArgs {
  const out: CmdArgs = { command: '', containerId: '', netns: '', ifname: '', args: '', path: '' };
  const command = env.CNI_COMMAND ?? '';
  const missing: string[] = [];
  for (const [name, key, verbs] of REQUIRED) {
    const value = env[name] ?? '';
    out[key] = value;
    const required = name === 'CNI_COMMAND' || verbs.includes(command);
    if (!required) continue;
    if (value === '') {
      missing.push(name);
      continue;
    }
    if (name === 'CNI_CONTAINERID') validateContainerId(value);
    if (name === 'CNI_IFNAME') validateInterfaceName(value);
  }
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnvironment, `required env variables [${missing.join(',')}] missing`);
  }
  return out;
}

/** A Kubernetes pod as CNI_ARGS names it (K8S_POD_NAMESPACE, K8S_POD_NAME), for logs and records. */
export interface PodName {
  namespace: string;
  name: string;
}

/** A Kubernetes namespace or pod name (DNS subdomain rules). */
export const K8S_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

/** The pod CNI_ARGS names (`IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;...`), if a valid one. */
export function podOfArgs(args: string): PodName | undefined {
  let namespace: string | undefined;
  let name: string | undefined;
  for (const pair of args.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = pair.slice(0, eq);
    if (key === 'K8S_POD_NAMESPACE') namespace = pair.slice(eq + 1);
    else if (key === 'K8S_POD_NAME') name = pair.slice(eq + 1);
  }
  return namespace && name && K8S_NAME.test(namespace) && K8S_NAME.test(name) ? { namespace, name } : undefined;
}
