/** Where log lines go: the file and stderr by level, the configuration and the environment's overrides. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureLog, log, resetLog } from '../../../src/host/log.js';

const dir = mkdtempSync(join(tmpdir(), 'log-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VARS = ['PORTMAP_LOG', 'PORTMAP_LOG_FILE', 'PORTMAP_LOG_FORMAT'] as const;
const saved = VARS.map((v) => process.env[v]);
let stderr: string[];
let n = 0;
let file: string;

beforeEach(() => {
  for (const v of VARS) delete process.env[v];
  stderr = [];
  resetLog((line) => stderr.push(line));
  file = join(dir, `${++n}.log`);
});
afterEach(() => {
  VARS.forEach((v, i) => (saved[i] === undefined ? delete process.env[v] : (process.env[v] = saved[i])));
  resetLog();
});

const fileLines = (): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const levels = (lines: string[]): string[] => lines.map((l) => / (\w+): /.exec(l)![1]!);

function all(): void {
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
}

describe('log', () => {
  it('without a file: stderr gets what the level lets through (info by default)', () => {
    all();
    expect(levels(stderr)).toEqual(['info', 'warning', 'error']);
    configureLog({ level: 'error' });
    all();
    expect(levels(stderr.slice(3))).toEqual(['error']);
  });

  it('with a file: the file gets every line of the level, stderr only warnings and errors', () => {
    configureLog({ file, level: 'debug' });
    all();
    expect(levels(fileLines())).toEqual(['debug', 'info', 'warning', 'error']);
    expect(levels(stderr)).toEqual(['warning', 'error']);
  });

  it('JSON lines when logFormat says so, on both', () => {
    configureLog({ file, format: 'json' });
    log.warn('careful', { network: 'podnet' });
    const [line] = fileLines();
    expect(JSON.parse(line!)).toMatchObject({ level: 'warn', pid: process.pid, msg: 'careful', network: 'podnet' });
    expect(JSON.parse(stderr[0]!)).toMatchObject({ msg: 'careful' });
  });

  it('PORTMAP_LOG, PORTMAP_LOG_FILE and PORTMAP_LOG_FORMAT override the configuration; invalid values are ignored', () => {
    const other = join(dir, `${n}-env.log`);
    configureLog({ file, level: 'warn', format: 'text' });
    process.env.PORTMAP_LOG = 'debug';
    process.env.PORTMAP_LOG_FILE = other;
    process.env.PORTMAP_LOG_FORMAT = 'json';
    log.debug('detail');
    expect(fileLines()).toEqual([]);
    expect(JSON.parse(readFileSync(other, 'utf8'))).toMatchObject({ level: 'debug', msg: 'detail' });
    process.env.PORTMAP_LOG = 'verbose';
    process.env.PORTMAP_LOG_FORMAT = 'yaml';
    delete process.env.PORTMAP_LOG_FILE;
    log.info('not at warn');
    log.warn('at warn');
    expect(fileLines().map((l) => l.replace(/^\S+ /, ''))).toEqual([`portmap[${process.pid}] warning: at warn`]);
  });

  it('a file it cannot write: one note on stderr, then its lines go to stderr; the caller never sees an error', () => {
    configureLog({ file: dir }); // a directory
    log.info('first');
    log.info('second');
    expect(stderr).toHaveLength(3);
    expect(stderr[0]).toMatch(new RegExp(`warning: cannot write the log file ${dir} \\(.*EISDIR.*\\): logging to stderr`));
    expect(stderr.slice(1).map((l) => l.split(': ').at(-1))).toEqual(['first\n', 'second\n']);
  });

  it('rotates at the configured logMaxSize', () => {
    configureLog({ file, maxSize: 200 });
    for (let i = 0; i < 5; i++) log.info('x'.repeat(50));
    expect(existsSync(`${file}.1`)).toBe(true);
  });
});
