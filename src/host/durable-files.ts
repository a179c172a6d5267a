/**
 * Durable replacements of files that outlive a boot (the plugin binary, conflists), for `portmap
 * install` and `uninstall`: every replacement is a temporary file in the target's own directory, synced,
 * then renamed over the target (and the directory synced), so a process that opens or execs the target
 * at any moment sees the old file or the new one, never a part of one, and a power loss keeps one of
 * them. (files.ts writes the per-boot records the same way without fsync: see there why.)
 */
import {
  closeSync, constants, copyFileSync, fchmodSync, fchownSync, fsyncSync, linkSync, openSync, readSync, renameSync,
  rmSync, statSync, writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';

export const tempName = (target: string): string =>
  join(dirname(target), `.${basename(target)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);

export function syncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export interface Ownership {
  mode: number;
  uid?: number;
  gid?: number;
}

/** Mode and owner to give a replacement: the target's when it exists, else `mode`. */
export function ownershipOf(target: string, mode: number): Ownership {
  try {
    const st = statSync(target);
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    return { mode };
  }
}

function finish(fd: number, own: Ownership): void {
  fchmodSync(fd, own.mode);
  if (own.uid !== undefined && own.gid !== undefined && process.getuid?.() === 0) fchownSync(fd, own.uid, own.gid);
  fsyncSync(fd);
}

/**
 * Prepares a temporary copy of `source` beside `target` (synced, with `own`'s mode) and returns its path;
 * the caller checks it, then commits it with commitTemp (or removes it).
 */
export function stageCopy(source: string, target: string, own: Ownership): string {
  const tmp = tempName(target);
  copyFileSync(source, tmp, constants.COPYFILE_EXCL);
  try {
    const fd = openSync(tmp, 'r+');
    try {
      finish(fd, own);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return tmp;
}

/** Writes `text` to a temporary file beside `target` and renames it over `target`. */
export function writeAtomic(target: string, text: string, own: Ownership): void {
  const tmp = tempName(target);
  const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    const buf = Buffer.from(text);
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
    finish(fd, own);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  commitTemp(tmp, target);
}

export function commitTemp(tmp: string, target: string): void {
  try {
    renameSync(tmp, target);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  syncDir(dirname(target));
}

/**
 * Makes `backup` another name of the file `target` is now (a hard link, swapped in with a rename so an
 * older backup is replaced atomically); a copy where links are refused. `target` itself is untouched.
 */
export function keepAs(target: string, backup: string): void {
  const tmp = tempName(backup);
  try {
    linkSync(target, tmp);
  } catch {
    copyFileSync(target, tmp, constants.COPYFILE_EXCL);
  }
  commitTemp(tmp, backup);
}

/** Whether two files have the same bytes. */
export function sameContent(a: string, b: string): boolean {
  let sa;
  let sb;
  try {
    sa = statSync(a);
    sb = statSync(b);
  } catch {
    return false;
  }
  if (sa.size !== sb.size) return false;
  if (sa.ino === sb.ino && sa.dev === sb.dev) return true;
  const fa = openSync(a, 'r');
  const fb = openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 20);
    const bb = Buffer.alloc(1 << 20);
    for (;;) {
      const na = readSync(fa, ba, 0, ba.length, null);
      const nb = readSync(fb, bb, 0, bb.length, null);
      if (na !== nb) return false;
      if (na === 0) return true;
      if (ba.compare(bb, 0, nb, 0, na) !== 0) return false;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

/** Whether a file holds `marker` (read in 1 MiB chunks). */
export function fileContains(file: string, marker: string): boolean {
  const needle = Buffer.from(marker);
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return false;
  }
  try {
    const buf = Buffer.alloc((1 << 20) + needle.length);
    let keep = 0;
    for (;;) {
      const n = readSync(fd, buf, keep, buf.length - keep, null);
      if (n === 0) return false;
      const len = keep + n;
      if (buf.subarray(0, len).includes(needle)) return true;
      keep = Math.min(needle.length - 1, len);
      buf.copy(buf, 0, len - keep, len);
    }
  } finally {
    closeSync(fd);
  }
}
