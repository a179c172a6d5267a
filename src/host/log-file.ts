/**
 * The log file: appended to by many short-lived processes at once (every CNI call is one), bounded in
 * size by rotation to one previous generation (`<file>.1`).
 *
 * - Append: the file is opened once per process (lazily, at its first line) with O_APPEND, and each
 *   line is one write(2): the kernel appends each write whole at the end of the file, so lines of
 *   concurrent processes never interleave. Created with mode 0640 (its directory, if missing, 0755);
 *   never through a symlink (O_NOFOLLOW: the plugin runs as root).
 * - Rotation: after a write, when the file (the inode this process writes to) is larger than maxSize,
 *   one process claims the rotation by creating the directory `<file>.rotating` (mkdir is exclusive:
 *   EEXIST means another process rotates), checks the size again by name (it may have rotated just
 *   before), renames `<file>` to `<file>.1` (atomically replacing the previous generation), and removes
 *   its claim. A process that has the old inode open writes its next line there (it is `<file>.1`
 *   now), sees that inode is no longer `<file>`, and opens the new one for the line after; the next
 *   process to log creates a new `<file>`. A claim left by a process killed in those
 *   microseconds is removed once it is a minute old. (A hard link as the claim, `<file>.rotating` ->
 *   `<file>`, could not tell its age: it shares the log's inode, whose times every write updates.)
 *
 * Nothing here throws: a line that cannot be written is reported to the caller (`ok: false`), which falls
 * back to stderr. A CNI call must never fail, or wait, because of its log.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, renameSync, rmdirSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

/** Claims older than this were left by a process that died while rotating (a rotation takes microseconds). */
export const STALE_CLAIM_MS = 60_000;

const FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

export const claimOf = (path: string): string => `${path}.rotating`;
export const previousOf = (path: string): string => `${path}.1`;

/**
 * Rotates `path` to `<path>.1` if it is larger than maxSize and no other process is rotating it.
 * True when this call rotated. Never throws.
 */
export function rotate(path: string, maxSize: number, now = Date.now()): boolean {
  const claim = claimOf(path);
  try {
    mkdirSync(claim, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') removeStaleClaim(claim, now);
    return false;
  }
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st || st.size <= maxSize) return false;
    renameSync(path, previousOf(path));
    return true;
  } catch {
    return false;
  } finally {
    try {
      rmdirSync(claim);
    } catch {
      // Gone already: removed as stale by another process.
    }
  }
}

function removeStaleClaim(claim: string, now: number): void {
  try {
    const st = statSync(claim, { throwIfNoEntry: false });
    if (st && now - st.mtimeMs > STALE_CLAIM_MS) rmdirSync(claim);
  } catch {
    // Someone else removed it, or it is not ours to remove.
  }
}

export class LogFile {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    readonly maxSize: number,
  ) {}

  private open(): number {
    try {
      return openSync(this.path, FLAGS, 0o640);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
      return openSync(this.path, FLAGS, 0o640);
    }
  }

  /**
   * Appends one line (one write(2)), then rotates the file when it grew past maxSize. Returns the
   * reason when the line could not be written; never throws.
   */
  append(line: string): { ok: true } | { ok: false; error: Error } {
    try {
      this.fd ??= this.open();
      writeSync(this.fd, line);
    } catch (err) {
      this.close();
      return { ok: false, error: err as Error };
    }
    try {
      const st = fstatSync(this.fd);
      if (st.size <= this.maxSize) return { ok: true };
      // Rotated by us, or by another process (our inode is `<file>.1` now): the next line opens the new file.
      if (rotate(this.path, this.maxSize) || statSync(this.path, { throwIfNoEntry: false })?.ino !== st.ino) this.close();
    } catch {
      // Rotation is best effort: the next line's write tries again.
    }
    return { ok: true };
  }

  close(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // nothing to do
    }
    this.fd = undefined;
  }
}
