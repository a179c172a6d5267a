/**
 * A recording stand-in for the portmap plugin in containerd's CNI bin_dir: an executable Node script,
 * installed as `portmap`, that runs the real plugin with the same stdin and environment, relays its
 * stdout, stderr and exit code, and appends one JSON line per call (the CNI_* variables, stdin, exit
 * code, output) to a log, so a test can see exactly what containerd sent and how the plugin answered.
 */
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface RecordedCall {
  env: Record<string, string>;
  stdin: string;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** The recorder's text: CommonJS (a file without an extension outside a "type": "module" package). */
function script(plugin: string, log: string): string {
  return `#!${process.execPath}
'use strict';
const fs = require('node:fs');
const { spawnSync } = require('node:child_process');
const input = fs.readFileSync(0);
const res = spawnSync(${JSON.stringify(plugin)}, [], { input, env: process.env, maxBuffer: 64 << 20 });
const env = {};
for (const [k, v] of Object.entries(process.env)) if (k.startsWith('CNI_')) env[k] = v;
const text = (b) => (b ? b.toString('utf8') : '');
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({
  env, stdin: input.toString('utf8'), code: res.status, signal: res.signal,
  stdout: text(res.stdout), stderr: text(res.stderr) + (res.error ? String(res.error) : ''),
}) + '\\n');
if (res.stdout) process.stdout.write(res.stdout);
if (res.stderr) process.stderr.write(res.stderr);
process.exitCode = res.status ?? 1;
`;
}

/** Installs the recorder at `file`, running `plugin` and logging to `log`. */
export function installRecorder(file: string, plugin: string, log: string): void {
  writeFileSync(file, script(plugin, log));
  chmodSync(file, 0o755);
}

export function readCalls(log: string): RecordedCall[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as RecordedCall);
}

/** A call in a form that says everything about it in a failure message. */
export function describeCall(c: RecordedCall): string {
  return JSON.stringify({ env: c.env, stdin: c.stdin, code: c.code, signal: c.signal, stdout: c.stdout, stderr: c.stderr }, null, 2);
}
