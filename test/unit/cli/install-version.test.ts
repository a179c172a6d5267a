/** What `portmap --version` prints is package.json's version (the release checks the built executable too). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VERSION } from '../../../src/cli/cli.js';

describe('the version', () => {
  it('is package.json\'s', () => {
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', '..', 'package.json'), 'utf8')) as { version: string; license: string };
    expect(VERSION).toBe(pkg.version);
    expect(pkg.license).toBe('Apache-2.0');
    expect(readFileSync(join(import.meta.dirname, '..', '..', '..', 'LICENSE'), 'utf8')).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(readFileSync(join(import.meta.dirname, '..', '..', '..', 'CHANGELOG.md'), 'utf8')).toContain(`## ${pkg.version}`);
  });
});
