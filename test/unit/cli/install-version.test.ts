/**
 * The release's papers: LICENSE is the Apache-2.0 text package.json names, CHANGELOG.md has a section
 * for package.json's version. (That the built executable's --version is package.json's version is
 * checked on the executable itself: scripts/release.mjs refuses otherwise, and test/integration/install.)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..', '..');

describe('the release papers', () => {
  it('LICENSE is Apache-2.0 as package.json says; CHANGELOG.md covers package.json\'s version', () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string; license: string };
    expect(pkg.license).toBe('Apache-2.0');
    expect(readFileSync(join(root, 'LICENSE'), 'utf8')).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(readFileSync(join(root, 'CHANGELOG.md'), 'utf8')).toContain(`## ${pkg.version}`);
  });
});
