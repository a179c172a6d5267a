/**
 * The log file: created with its directory, one write per line, rotation to one previous generation,
 * and many processes appending and rotating at once (no line torn, none lost beyond the dropped
 * generations, sizes bounded).
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LogFile, STALE_CLAIM_MS, claimOf, previousOf, rotate } from '../../../src/host/log-file.js';

const ROOT = resolve(import.meta.dirname, '..', '..', '..');
let dir: string;
let writer: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'log-file-'));
  // A process that appends numbered JSON lines through LogFile: argv path maxSize id count padding.
  writer = join(dir, 'writer.mjs');
  await build({
    stdin: {
      contents: `
        import { LogFile } from ${JSON.stringify(join(ROOT, 'src/host/log-file.ts'))};
        const [path, max, id, n, pad] = process.argv.slice(2);
        const f = new LogFile(path, Number(max));
        const pause = new Int32Array(new SharedArrayBuffer(4));
        for (let i = 0; i < Number(n); i++) {
          const r = f.append(JSON.stringify({ id: Number(id), i, pad: 'x'.repeat(Number(pad)) }) + '\\n');
          if (!r.ok) { console.error(r.error.message); process.exit(3); }
          // About the pace of CNI calls on a busy node, only faster: other writers get in between.
          if (i % 8 === 0) Atomics.wait(pause, 0, 0, 1);
        }`,
      resolveDir: ROOT,
      loader: 'ts',
    },
    bundle: true,
    platform: 'node',
    format: 'esm',
    outfile: writer,
    logLevel: 'warning',
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const umask = process.umask();

function writers(path: string, maxSize: number, processes: number, lines: number, pad: number): Promise<number[]> {
  return Promise.all(
    Array.from({ length: processes }, (_, id) => new Promise<number>((ok) => {
      const child = spawn(process.execPath, [writer, path, String(maxSize), String(id), String(lines), String(pad)], { stdio: ['ignore', 'ignore', 'inherit'] });
      child.on('exit', (code) => ok(code ?? -1));
    })),
  );
}

interface Parsed {
  lines: Array<{ id: number; i: number }>;
  torn: string[];
}

function parse(...files: string[]): Parsed {
  const out: Parsed = { lines: [], torn: [] };
  for (const f of files) {
    if (!existsSync(f)) continue;
    const text = readFileSync(f, 'utf8');
    if (text !== '' && !text.endsWith('\n')) out.torn.push(`${f}: no final newline`);
    for (const l of text.split('\n').filter(Boolean)) {
      try {
        const v = JSON.parse(l) as { id: number; i: number; pad: string };
        out.lines.push({ id: v.id, i: v.i });
      } catch {
        out.torn.push(l.slice(0, 80));
      }
    }
  }
  return out;
}

describe('LogFile', () => {
  it('creates the file (0640) and its missing directories (0755) at the first line, and appends', () => {
    const path = join(dir, 'new', 'deeper', 'portmap.log');
    const f = new LogFile(path, 1 << 20);
    expect(existsSync(path)).toBe(false);
    expect(f.append('one\n')).toEqual({ ok: true });
    expect(f.append('two\n')).toEqual({ ok: true });
    f.close();
    expect(readFileSync(path, 'utf8')).toBe('one\ntwo\n');
    expect(statSync(path).mode & 0o777).toBe(0o640 & ~umask);
    expect(statSync(join(dir, 'new')).mode & 0o777).toBe(0o755 & ~umask);
  });

  it('never writes through a symlink, and reports (never throws) what it could not write', () => {
    const target = join(dir, 'target');
    writeFileSync(target, '');
    const link = join(dir, 'link.log');
    symlinkSync(target, link);
    const res = new LogFile(link, 1 << 20).append('x\n');
    expect(res.ok).toBe(false);
    expect(readFileSync(target, 'utf8')).toBe('');
    const inDir = new LogFile(join(dir), 1 << 20).append('x\n');
    expect(inDir.ok).toBe(false);
  });

  it('rotates to <file>.1 once larger than maxSize (one generation kept), and goes on in a new file', () => {
    const path = join(dir, 'rot.log');
    const f = new LogFile(path, 100);
    const line = `${'a'.repeat(39)}\n`;
    for (let i = 0; i < 3; i++) f.append(line); // 120 bytes: rotated after the third
    expect(readFileSync(previousOf(path), 'utf8')).toBe(line.repeat(3));
    expect(existsSync(path)).toBe(false);
    f.append('b\n');
    expect(readFileSync(path, 'utf8')).toBe('b\n');
    for (let i = 0; i < 3; i++) f.append(line);
    // The previous .1 is replaced: only one generation is kept.
    expect(readFileSync(previousOf(path), 'utf8')).toBe(`b\n${line.repeat(3)}`);
    expect(existsSync(claimOf(path))).toBe(false);
    f.close();
  });

  it('leaves the rotation to whoever holds the claim; a claim a minute old was left by a dead process and goes', () => {
    const path = join(dir, 'claimed.log');
    writeFileSync(path, 'x'.repeat(200));
    mkdirSync(claimOf(path));
    expect(rotate(path, 100)).toBe(false);
    expect(existsSync(claimOf(path))).toBe(true);
    expect(statSync(path).size).toBe(200);
    const old = (Date.now() - STALE_CLAIM_MS - 5_000) / 1000;
    utimesSync(claimOf(path), old, old);
    expect(rotate(path, 100)).toBe(false); // removes the stale claim; the next line rotates
    expect(existsSync(claimOf(path))).toBe(false);
    expect(rotate(path, 100)).toBe(true);
    expect(statSync(previousOf(path)).size).toBe(200);
  });

  it('does not rotate a file another process has just rotated (the size is checked again after the claim)', () => {
    const path = join(dir, 'again.log');
    writeFileSync(path, 'small\n');
    expect(rotate(path, 100)).toBe(false);
    expect(existsSync(previousOf(path))).toBe(false);
    expect(rotate(join(dir, 'missing.log'), 100)).toBe(false);
  });

  it('20 processes appending past the limit once: every line kept whole, in each process\'s order, none lost', async () => {
    const path = join(dir, 'once', 'portmap.log');
    const maxSize = 200 * 1024;
    // 20 x 100 lines of ~150 bytes: ~300 KB, so exactly one rotation.
    expect(await writers(path, maxSize, 20, 100, 120)).toEqual(Array(20).fill(0));
    const { lines, torn } = parse(previousOf(path), path);
    expect(torn).toEqual([]);
    expect(lines).toHaveLength(2000);
    expect(new Set(lines.map((l) => `${l.id}:${l.i}`)).size).toBe(2000);
    for (let id = 0; id < 20; id++) {
      const mine = lines.filter((l) => l.id === id).map((l) => l.i);
      expect(mine).toEqual([...mine].sort((a, b) => a - b));
    }
    expect(statSync(previousOf(path)).size).toBeGreaterThan(maxSize);
    expect(statSync(path).size).toBeLessThanOrEqual(maxSize);
    expect(existsSync(claimOf(path))).toBe(false);
  });

  it('20 processes rotating many times: no torn or repeated line, both files bounded, the newest generation kept', async () => {
    const path = join(dir, 'many', 'portmap.log');
    const maxSize = 64 * 1024;
    // ~1.2 MB through a 64 KiB file: about 18 rotations, with writers that hold the rotated inode open.
    expect(await writers(path, maxSize, 20, 400, 120)).toEqual(Array(20).fill(0));
    const { lines, torn } = parse(previousOf(path), path);
    expect(torn).toEqual([]);
    expect(new Set(lines.map((l) => `${l.id}:${l.i}`)).size).toBe(lines.length);
    for (const f of [path, previousOf(path)]) expect(lstatSync(f).size).toBeLessThan(2 * maxSize);
    // What is kept is at least one whole generation: more than maxSize bytes.
    expect(statSync(previousOf(path)).size).toBeGreaterThan(maxSize);
    expect(existsSync(claimOf(path))).toBe(false);
  });
});
