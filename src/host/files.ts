/**
 * Small state files: written atomically (a private temporary file in the same directory, then rename),
 * read back through a validator. Synchronous calls only: a CNI call that writes a record must not load
 * node:fs/promises (~1.5 ms) or wait for the event loop; each call here is one or two syscalls.
 *
 * No fsync: the files this module writes (portmap's attachment records) describe one boot's pods. A
 * process killed mid-write leaves the old file or the new one (rename is atomic; the page cache survives
 * the process). Only a kernel crash or power loss can lose written data, and that also ends every pod the
 * records describe: the next boot finds them dead by their boot id. fsync would cost 0.5-4 ms per ADD on
 * this machine's disk (bench/restore.mjs; the write itself 0.1-0.2 ms) for state that is void after the
 * only failure it guards.
 */
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** A temporary file left by a writer that died: `.name.<pid>.tmp`. */
export const isTempName = (name: string): boolean => name.startsWith('.') && name.endsWith('.tmp');

const tempOf = (path: string): string => join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);

/** Creates the directory (and its parents) with mode 0700 when missing. */
export function ensureDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}

function writeAll(fd: number, data: string): void {
  const buf = Buffer.from(data);
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off);
}

/**
 * Replaces `path` with `data` atomically (mode 0600). The directory is created on first use only:
 * the common write is open + write + close + rename.
 */
export function writeFileAtomic(path: string, data: string): void {
  const tmp = tempOf(path);
  let fd: number;
  try {
    fd = openSync(tmp, 'w', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    ensureDir(dirname(path));
    fd = openSync(tmp, 'w', 0o600);
  }
  try {
    writeAll(fd, data);
  } catch (err) {
    closeSync(fd);
    removeFile(tmp);
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    removeFile(tmp);
    throw err;
  }
}

/** Removes a file; true when it existed. */
export function removeFile(path: string): boolean {
  try {
    unlinkSync(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** The text of a file, or undefined when it does not exist. */
export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export type Validated<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Reads a JSON file and validates it with `parse` (which throws on invalid content, e.g. a zod
 * schema's parse). undefined when the file does not exist.
 */
export function readJson<T>(path: string, parse: (value: unknown) => T): Validated<T> | undefined {
  const text = readText(path);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `not JSON: ${(err as Error).message}` };
  }
  try {
    return { ok: true, value: parse(value) };
  } catch (err) {
    return { ok: false, error: (err as Error).message.split('\n')[0] ?? 'invalid' };
  }
}

/** The names in a directory (sorted); empty when it does not exist. */
export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Milliseconds since a file was last modified, or undefined when it does not exist. */
export function ageMs(path: string, now = Date.now()): number | undefined {
  try {
    return now - statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}
