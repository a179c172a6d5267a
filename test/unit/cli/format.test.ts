/** Plain-text tables. */
import { describe, expect, it } from 'vitest';
import { table, wrap } from '../../../src/cli/format.js';

describe('wrap', () => {
  it('wraps at the width, keeps the first line\'s indentation and indents the others', () => {
    expect(wrap('    fix: one two three four', 16, '         ')).toBe('    fix: one two\n         three\n         four');
    expect(wrap('a b', 10)).toBe('a b');
    expect(wrap('', 10)).toBe('');
  });
});

describe('table', () => {
  it('aligns columns', () => {
    expect(table(['A', 'LONG'], [['xxx', 'y'], ['z', '']])).toBe('A    LONG\nxxx  y\nz\n');
  });
});
