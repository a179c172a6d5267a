/**
 * Logs go to stderr (stdout carries the CNI result). PORTMAP_LOG=debug shows debug lines;
 * PORTMAP_LOG_FILE appends every line to a file as well (runtimes often discard plugin stderr).
 */
import { appendFileSync } from 'node:fs';

// Read per line, not at load: the self-contained executable starts from a snapshot taken at build time.
const level = (): string => (process.env.PORTMAP_LOG ?? 'info').toLowerCase();

function write(kind: string, msg: string): void {
  const line = `${new Date().toISOString()} portmap[${process.pid}] ${kind}: ${msg}\n`;
  process.stderr.write(line);
  const file = process.env.PORTMAP_LOG_FILE;
  if (file) {
    try {
      appendFileSync(file, line);
    } catch {
      // Logging must never fail a CNI call.
    }
  }
}

export const log = {
  debug: (msg: string): void => {
    if (level() === 'debug') write('debug', msg);
  },
  info: (msg: string): void => {
    if (['debug', 'info'].includes(level())) write('info', msg);
  },
  warn: (msg: string): void => write('warning', msg),
};
