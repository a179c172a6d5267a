/** Where a conflist stops being JSON (doctor's position, the same on Node.js and Bun). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { jsonError } from '../../../src/cli/json-error.js';

const valid = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

describe('jsonError', () => {
  it('names the line, column and what was expected', () => {
    expect(jsonError('{\n  "a": 1,\n}')).toMatchObject({ line: 3, column: 1, message: 'expected a key (no comma before "}"), found "}"' });
    expect(jsonError('{"a" 1}')).toMatchObject({ line: 1, column: 6, message: 'expected ":", found "1"' });
    expect(jsonError('{"a": tru}')).toMatchObject({ line: 1, column: 7, message: 'expected a value, found "t"' });
    expect(jsonError('{"a": "b\n"}')).toMatchObject({ line: 1, column: 9 });
    expect(jsonError('\ufeff{}')).toMatchObject({ line: 1, column: 1, message: 'expected a value, found U+FEFF (a byte order mark)' });
    expect(jsonError('{} {}')).toMatchObject({ column: 4, message: 'expected the end of the file (one JSON value only), found "{"' });
    expect(jsonError('{"a": [1, 2')).toMatchObject({ message: 'expected "," or "]", found the end of the file' });
    expect(jsonError('{"plugins": []}')).toBeUndefined();
  });

  it('agrees with JSON.parse on what is JSON, for any value and for damaged texts', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => jsonError(JSON.stringify(v, null, 1)) === undefined));
    const damaged = fc.tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '}', ']', '"', ':', 'x', '\\', '\n', '0')).map(([t, at, ins]) => {
      const i = at % (t.length + 1);
      return t.slice(0, i) + ins + t.slice(i + (ins === '' ? 1 : 0));
    });
    fc.assert(fc.property(damaged, (text) => (jsonError(text) === undefined) === valid(text)), { numRuns: 2000 });
  });
});
