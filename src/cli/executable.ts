/**
 * What `portmap install` copies: the running executable. A self-contained executable (Bun-compiled or a
 * Node single executable application) is `process.execPath` itself; the bundle run by `node` is the
 * script in argv[1], which needs node >= 20 on the node's PATH to run as a plugin.
 */
import { realpathSync, statSync } from 'node:fs';

/**
 * A string every build of this plugin carries verbatim (it is in this module's code): how install tells
 * its own earlier versions from another plugin's binary in the CNI bin directory (see install.ts).
 */
export const BINARY_MARKER = 'portmap-ts:cni-hostport-plugin:b1f7e0';

export interface RunningExecutable {
  path: string;
  /** native: runs on its own; script: a `#!/usr/bin/env node` file. */
  kind: 'native' | 'script';
}

const real = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
};

async function isNodeSea(): Promise<boolean> {
  try {
    const sea = (await import('node:sea')) as { isSea?: () => boolean };
    return sea.isSea?.() === true;
  } catch {
    return false;
  }
}

export async function runningExecutable(): Promise<RunningExecutable> {
  const exe = real(process.execPath);
  const script = process.argv[1];
  if (process.versions.bun !== undefined || (await isNodeSea()) || script === undefined) return { path: exe, kind: 'native' };
  const file = real(script);
  let regular: boolean;
  try {
    regular = statSync(file).isFile();
  } catch {
    regular = false;
  }
  // Bun's embedded entry (/$bunfs/...) and a SEA's argv[1] (the executable itself) are not scripts.
  if (!regular || file === exe) return { path: exe, kind: 'native' };
  return { path: file, kind: 'script' };
}
