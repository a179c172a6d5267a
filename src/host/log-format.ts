/**
 * One log line, as text or as a JSON object (pure). Every line is one `\n`-terminated line whatever
 * its message holds (newlines in a message are joined), so that a file of them splits on `\n`.
 *
 * text: `2026-12-01T12:00:00.000Z portmap[4242] info: ADD network=podnet containerID=5f2c... path=fast ms=31 outcome=ok`
 * json: `{"time":"2026-12-01T12:00:00.000Z","level":"info","pid":4242,"verb":"ADD","network":"podnet",...}`
 */

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type LogFormat = 'text' | 'json';
export type LogValue = string | number | boolean | undefined;
export type LogFields = Readonly<Record<string, LogValue>>;

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug'];
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

/** Lower is more severe: a line is written when its rank is at most the threshold's. */
export const LEVEL_RANK: Readonly<Record<LogLevel, number>> = { error: 0, warn: 1, info: 2, debug: 3 };

/** The word of each level in text lines (`warning`, as the plugin always wrote it). */
const TEXT_LABEL: Readonly<Record<LogLevel, string>> = { error: 'error', warn: 'warning', info: 'info', debug: 'debug' };

export interface LogEntry {
  time: Date;
  level: LogLevel;
  pid: number;
  /** The message; a call's line has none (its `verb` heads the text line, and `msg` is the error's). */
  msg?: string;
  fields?: LogFields;
}

const oneLine = (s: string): string => (s.includes('\n') ? s.trim().replace(/\s*\r?\n\s*/g, ' | ') : s);

/** A logfmt value: bare when it is one word without quotes or `=`, else a JSON string. */
const BARE = /^[^\s"=\\]+$/;
function textValue(v: string | number | boolean): string {
  if (typeof v !== 'string') return String(v);
  return v !== '' && BARE.test(v) ? v : JSON.stringify(v);
}

export function formatText(e: LogEntry): string {
  const fields = e.fields ?? {};
  const head = e.msg ?? (typeof fields.verb === 'string' ? fields.verb : '');
  let line = `${e.time.toISOString()} portmap[${e.pid}] ${TEXT_LABEL[e.level]}: ${oneLine(head)}`;
  for (const key in fields) {
    const v = fields[key];
    if (v === undefined || (key === 'verb' && e.msg === undefined)) continue;
    line += ` ${key}=${textValue(v)}`;
  }
  return `${line}\n`;
}

export function formatJson(e: LogEntry): string {
  const out: Record<string, LogValue> = { time: e.time.toISOString(), level: e.level, pid: e.pid };
  if (e.msg !== undefined) out.msg = e.msg;
  const fields = e.fields ?? {};
  for (const key in fields) if (fields[key] !== undefined) out[key] = fields[key];
  // JSON.stringify escapes newlines: one object is always one line.
  return `${JSON.stringify(out)}\n`;
}

export const formatLine = (format: LogFormat, e: LogEntry): string => (format === 'json' ? formatJson(e) : formatText(e));

/** A level name as written in a configuration or PORTMAP_LOG (any case; `warning` means warn); undefined otherwise. */
export function levelOf(text: string | undefined): LogLevel | undefined {
  if (!text) return undefined;
  const t = text.toLowerCase();
  if (t === 'warning') return 'warn';
  return (LOG_LEVELS as readonly string[]).includes(t) ? (t as LogLevel) : undefined;
}

export function formatOf(text: string | undefined): LogFormat | undefined {
  if (!text) return undefined;
  const t = text.toLowerCase();
  return (LOG_FORMATS as readonly string[]).includes(t) ? (t as LogFormat) : undefined;
}
