/** The plugin's log captured in unit tests: JSON lines in a private file (PORTMAP_LOG_FILE), read back parsed. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resetLog } from '../../src/host/log.js';

export type LogLine = Record<string, unknown> & { level: string; msg?: string };

export interface CapturedLog {
  file: string;
  lines(): LogLine[];
  /** The messages (and call lines' verbs) of the lines, one string each. */
  texts(): string[];
  stop(): void;
}

const VARS = ['PORTMAP_LOG', 'PORTMAP_LOG_FILE', 'PORTMAP_LOG_FORMAT'] as const;

export function captureLog(level = 'debug'): CapturedLog {
  const dir = mkdtempSync(join(tmpdir(), 'portmap-log-'));
  const file = join(dir, 'portmap.log');
  const saved = VARS.map((v) => process.env[v]);
  process.env.PORTMAP_LOG = level;
  process.env.PORTMAP_LOG_FILE = file;
  process.env.PORTMAP_LOG_FORMAT = 'json';
  resetLog();
  const lines = (): LogLine[] => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as LogLine);
  };
  return {
    file,
    lines,
    texts: () => lines().map((l) => String(l.msg ?? l.verb ?? '')),
    stop: () => {
      VARS.forEach((v, i) => {
        if (saved[i] === undefined) delete process.env[v];
        else process.env[v] = saved[i];
      });
      resetLog();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
