/**
 * The standalone executable (dist/portmap-standalone, `npm run build`: Bun's single-file compiler),
 * the one README installs, and the PATH of a node without Node.js for it: tests that run the plugin as
 * it is installed (standalone.test.ts, crash, stress) use both.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PLUGIN, ROOT } from './harness.js';

/** dist/portmap-standalone, named in one place (build/executable.json). */
export const STANDALONE = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'build', 'executable.json'), 'utf8')) as { selfContained: string }).selfContained);

/** Programs a node without a JavaScript runtime does not have. */
const RUNTIMES = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack', 'bun', 'bunx']);

export interface NodePath {
  /** The PATH value: one directory. */
  path: string;
  remove(): void;
}

/**
 * A PATH of one directory with a symlink to every program of /usr/sbin, /usr/bin, /sbin and /bin (the
 * first one of each name, as PATH would find it) except the JavaScript runtimes: the plugin sees the
 * tools of a real node (nft, iptables*, ip, conntrack, stdbuf...), and `node` is not reachable.
 */
export function pathWithoutNode(): NodePath {
  const dir = mkdtempSync(join(tmpdir(), 'portmap-no-node-path-'));
  const seen = new Set<string>();
  for (const sys of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    let names: string[];
    try {
      names = readdirSync(sys);
    } catch {
      continue;
    }
    for (const name of names) {
      if (seen.has(name) || RUNTIMES.has(name)) continue;
      seen.add(name);
      symlinkSync(join(sys, name), join(dir, name));
    }
  }
  return { path: dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function requireStandalone(): void {
  if (!existsSync(STANDALONE)) {
    throw new Error(`${STANDALONE} is missing: npm run build builds it (with the Bun package npm ci installs; see the build's warning)`);
  }
}

export interface Executable {
  /** The binary a runtime execs. */
  bin: string;
  /** The PATH of its calls. */
  path: string;
  label: string;
  remove(): void;
}

/**
 * The executable the crash and stress tests call: the standalone one with no node on PATH (what README
 * installs), or, with PORTMAP_TEST_EXECUTABLE=bundle, dist/portmap with this process's PATH.
 */
export function executableUnderTest(): Executable {
  if (process.env.PORTMAP_TEST_EXECUTABLE === 'bundle') {
    return { bin: PLUGIN, path: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', label: 'dist/portmap', remove: () => undefined };
  }
  requireStandalone();
  const p = pathWithoutNode();
  return { bin: STANDALONE, path: p.path, label: 'standalone, no node on PATH', remove: p.remove };
}
