import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { listDir, readJson, removeFile, writeFileAtomic } from '../../../src/host/files.js';

let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('state files', () => {
  it('writes atomically into a directory created on first use, leaving no temporary file', () => {
    dir = mkdtempSync(join(tmpdir(), 'files-'));
    const file = join(dir, 'a', 'b', 'x.json');
    writeFileAtomic(file, '{"n":1}');
    writeFileAtomic(file, '{"n":2}');
    expect(readJson(file, (v) => v)).toEqual({ ok: true, value: { n: 2 } });
    expect(readdirSync(join(dir, 'a', 'b'))).toEqual(['x.json']);
  });

  it('reads through the validator: missing, not JSON, invalid', () => {
    dir = mkdtempSync(join(tmpdir(), 'files-'));
    const file = join(dir, 'x.json');
    expect(readJson(file, (v) => v)).toBeUndefined();
    writeFileSync(file, '{"n":');
    expect(readJson(file, (v) => v)).toMatchObject({ ok: false, error: expect.stringMatching(/not JSON/) });
    writeFileSync(file, '{"n":"x"}');
    const parse = (v: unknown) => {
      if (typeof (v as { n: unknown }).n !== 'number') throw new Error('n must be a number');
      return v;
    };
    expect(readJson(file, parse)).toEqual({ ok: false, error: 'n must be a number' });
    expect(removeFile(file)).toBe(true);
    expect(removeFile(file)).toBe(false);
    expect(listDir(join(dir, 'missing'))).toEqual([]);
  });
});
