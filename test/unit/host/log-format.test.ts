/** Log lines as text and JSON: one line each, stable field names, values quoted only where needed. */
import { describe, expect, it } from 'vitest';
import { formatJson, formatText, formatOf, levelOf } from '../../../src/host/log-format.js';

const time = new Date('2026-12-01T12:00:00.123Z');

describe('log lines', () => {
  it('text: time, pid, the level word, the message, then key=value fields (undefined ones left out)', () => {
    expect(formatText({ time, level: 'warn', pid: 42, msg: 'something odd', fields: { a: 'x', b: undefined, n: 3 } }))
      .toBe('2026-12-01T12:00:00.123Z portmap[42] warning: something odd a=x n=3\n');
  });

  it("text: a call's line is headed by its verb; values with spaces, quotes or '=' are JSON strings", () => {
    const line = formatText({ time, level: 'error', pid: 7, fields: { verb: 'ADD', network: 'podnet', ms: 2, outcome: 'error', code: 7, msg: 'invalid value for logLevel: "loud"', details: '' } });
    expect(line).toBe('2026-12-01T12:00:00.123Z portmap[7] error: ADD network=podnet ms=2 outcome=error code=7 msg="invalid value for logLevel: \\"loud\\"" details=""\n');
  });

  it('text: a message over several lines stays one line', () => {
    const line = formatText({ time, level: 'debug', pid: 1, msg: 'nft said:\n  first\n\n  second\n' });
    expect(line).toBe('2026-12-01T12:00:00.123Z portmap[1] debug: nft said: | first | second\n');
    expect(line.split('\n')).toHaveLength(2);
  });

  it('JSON: time, level, pid first, then msg and the fields; one object per line whatever the message holds', () => {
    const line = formatJson({ time, level: 'info', pid: 42, fields: { verb: 'ADD', network: 'podnet', pod: undefined, ms: 31, outcome: 'ok' } });
    expect(line).toBe('{"time":"2026-12-01T12:00:00.123Z","level":"info","pid":42,"verb":"ADD","network":"podnet","ms":31,"outcome":"ok"}\n');
    const multi = formatJson({ time, level: 'warn', pid: 1, msg: 'a\nb' });
    expect(multi.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(multi)).toEqual({ time: time.toISOString(), level: 'warn', pid: 1, msg: 'a\nb' });
  });

  it('levels and formats as configured or in the environment: any case, warning means warn, anything else is not one', () => {
    expect(['error', 'WARN', 'warning', 'Info', 'debug'].map(levelOf)).toEqual(['error', 'warn', 'warn', 'info', 'debug']);
    expect([undefined, '', 'verbose', 'trace'].map(levelOf)).toEqual([undefined, undefined, undefined, undefined]);
    expect(['text', 'JSON', 'yaml', ''].map(formatOf)).toEqual(['text', 'json', undefined, undefined]);
  });
});
