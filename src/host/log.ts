/**
 * The plugin's log. Where lines go:
 *
 * - with a log file (the configuration's `logFile`, or PORTMAP_LOG_FILE): every line at or above the
 *   level goes to the file (host/log-file.ts: one write per line, O_APPEND, rotation); stderr gets
 *   warnings and errors only;
 * - without: every line at or above the level goes to stderr.
 *
 * The level (`logLevel`, default info; PORTMAP_LOG overrides) and the format (`logFormat`, text or JSON
 * lines; PORTMAP_LOG_FORMAT overrides) apply to both. stdout is never written: it carries the CNI result.
 * A CNI call configures the log from its configuration (configureLog) before its first line; the
 * operator commands never do, and log to stderr as the environment says.
 *
 * libcni (containerd, CRI-O) copies the stderr of a plugin that succeeded to the runtime's own stderr
 * (its journal): a successful call writes at most its one info line there, or nothing with a log file.
 */
import { writeSync } from 'node:fs';
import { LogFile } from './log-file.js';
import { type LogFields, type LogFormat, type LogLevel, LEVEL_RANK, formatLine, formatOf, levelOf } from './log-format.js';

export type { LogFields, LogFormat, LogLevel } from './log-format.js';

export interface LogSettings {
  /** Absolute path of the log file; undefined: stderr only. */
  file?: string;
  level?: LogLevel;
  format?: LogFormat;
  /** Rotate the file to `<file>.1` once it is larger (bytes). */
  maxSize?: number;
}

export const DEFAULT_LOG_MAX_SIZE = 10 * 1024 * 1024;

let configured: LogSettings | undefined;
let file: LogFile | undefined;
/** Files this process could not write (noted once on stderr each, then stderr takes their lines). */
const broken = new Set<string>();

/** Sets where this process logs (a CNI call, from its configuration; the environment still overrides). */
export function configureLog(settings: LogSettings): void {
  configured = settings;
}

/** Tests: where stderr lines go instead (undefined: stderr). */
let stderrWriter: ((line: string) => void) | undefined;

/** Back to the unconfigured state; `stderr`: a writer that gets the stderr lines instead (tests). */
export function resetLog(stderr?: (line: string) => void): void {
  configured = undefined;
  file?.close();
  file = undefined;
  broken.clear();
  stderrWriter = stderr;
}

interface Effective {
  level: LogLevel;
  format: LogFormat;
  file?: string;
  maxSize: number;
}

// Read at each line, not at load: the environment of a test or an embedding process may change.
function effective(): Effective {
  const env = process.env;
  const path = env.PORTMAP_LOG_FILE || configured?.file;
  return {
    level: levelOf(env.PORTMAP_LOG) ?? configured?.level ?? 'info',
    format: formatOf(env.PORTMAP_LOG_FORMAT) ?? configured?.format ?? 'text',
    ...(path ? { file: path } : {}),
    maxSize: configured?.maxSize ?? DEFAULT_LOG_MAX_SIZE,
  };
}

/**
 * A CNI call writes fd 2 directly (building process.stderr costs some 3 ms); the operator commands,
 * which write process.stderr themselves, go through it so that their output stays in order.
 */
function toStderr(line: string): void {
  if (stderrWriter) {
    stderrWriter(line);
    return;
  }
  if (configured === undefined) {
    process.stderr.write(line);
    return;
  }
  try {
    writeSync(2, line);
  } catch {
    // No stderr (closed, or a full non-blocking pipe): the line is lost, the call is not.
  }
}

function fileFor(s: Effective & { file: string }): LogFile {
  if (!file || file.path !== s.file || file.maxSize !== s.maxSize) {
    file?.close();
    file = new LogFile(s.file, s.maxSize);
  }
  return file;
}

/** Writes one line at `level` where the settings send it. Never throws. */
export function emit(level: LogLevel, msg: string | undefined, fields?: LogFields): void {
  const s = effective();
  const rank = LEVEL_RANK[level];
  const threshold = LEVEL_RANK[s.level];
  if (rank > threshold) return;
  const path = s.file !== undefined && !broken.has(s.file) ? s.file : undefined;
  const entry = { time: new Date(), level, pid: process.pid, ...(msg !== undefined ? { msg } : {}), ...(fields ? { fields } : {}) };
  const line = formatLine(s.format, entry);
  if (path !== undefined) {
    const res = fileFor({ ...s, file: path }).append(line);
    if (res.ok) {
      if (rank <= LEVEL_RANK.warn) toStderr(line);
      return;
    }
    broken.add(path);
    toStderr(formatLine(s.format, { time: entry.time, level: 'warn', pid: entry.pid, msg: `cannot write the log file ${path} (${res.error.message}): logging to stderr` }));
  }
  toStderr(line);
}

export const log = {
  error: (msg: string, fields?: LogFields): void => emit('error', msg, fields),
  warn: (msg: string, fields?: LogFields): void => emit('warn', msg, fields),
  info: (msg: string, fields?: LogFields): void => emit('info', msg, fields),
  debug: (msg: string, fields?: LogFields): void => emit('debug', msg, fields),
};
