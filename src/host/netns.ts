/**
 * Network namespace identity, for records scoped to the namespace the plugin runs in and for telling
 * whether a pod's namespace still exists. A namespace is identified by the device and inode of its nsfs
 * file (what `stat /proc/self/ns/net` and `stat /var/run/netns/X` report; the same pair for every path
 * to one namespace, and unique among live namespaces). Inode numbers are reused after a reboot, and may
 * be reused after a namespace is freed, so an identity is valid only together with the boot it was
 * taken in (/proc/sys/kernel/random/boot_id): no namespace survives a reboot.
 */
import { readFileSync, statSync } from 'node:fs';

export interface NetnsId {
  dev: number;
  ino: number;
}

/** The identity of the namespace at a path (`/var/run/netns/X`, `/proc/<pid>/ns/net`); undefined when it cannot be opened. */
export function netnsAt(path: string): NetnsId | undefined {
  if (path === '') return undefined;
  try {
    const st = statSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/** The namespace this process runs in. */
export function ownNetns(): NetnsId {
  const id = netnsAt('/proc/self/ns/net');
  if (!id) throw new Error('cannot stat /proc/self/ns/net (is /proc mounted?)');
  return id;
}

/**
 * This boot's random id. Read each time (one small /proc read): a value cached in the module would be
 * baked into the self-contained executable's startup snapshot at build time.
 */
export function bootId(file = '/proc/sys/kernel/random/boot_id'): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** A directory name for a namespace: `netns-<dev>-<ino>`. */
export const scopeName = (ns: NetnsId): string => `netns-${ns.dev}-${ns.ino}`;

export const sameNetns = (a: NetnsId | undefined, b: NetnsId | undefined): boolean =>
  a !== undefined && b !== undefined && a.dev === b.dev && a.ino === b.ino;

export type Liveness = { alive: true } | { alive: false; reason: string };

/**
 * Whether the namespace recorded as `id` at `path` in boot `boot` still exists: same boot, and the path
 * still opens the same namespace (not a file left after `ip netns del`, not another process's namespace
 * behind a reused /proc/<pid> path).
 */
export function netnsAlive(path: string, id: NetnsId | undefined, boot: string, currentBoot = bootId()): Liveness {
  if (boot !== currentBoot) return { alive: false, reason: 'recorded in an earlier boot' };
  if (path === '') return { alive: false, reason: 'no network namespace was recorded' };
  const now = netnsAt(path);
  if (!now) return { alive: false, reason: `its network namespace ${path} is gone` };
  if (id && !sameNetns(now, id)) return { alive: false, reason: `${path} is now another network namespace` };
  return { alive: true };
}

/** When this boot started (ms since the epoch), from /proc/uptime; undefined when unreadable. */
export function bootTimeMs(now = Date.now()): number | undefined {
  try {
    const up = Number.parseFloat(readFileSync('/proc/uptime', 'utf8').split(' ')[0] ?? '');
    return Number.isFinite(up) ? now - up * 1000 : undefined;
  } catch {
    return undefined;
  }
}
