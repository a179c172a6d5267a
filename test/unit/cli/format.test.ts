/** Plain-text tables. */
import { describe, expect, it } from 'vitest';
import { table } from '../../../src/cli/format.js';

describe('table', () => {
  it('aligns columns', () => {
    expect(table(['A', 'LONG'], [['xxx', 'y'], ['z', '']])).toBe('A    LONG\nxxx  y\nz\n');
  });
});
