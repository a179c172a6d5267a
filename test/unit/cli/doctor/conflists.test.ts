/** Conflists without the portMappings capability. */
import { describe, expect, it } from 'vitest';
import { facts, ids } from './fixtures.js';

describe('doctor: conflists', () => {
  it('conflists without the portMappings capability', () => {
    const file = (text: string) => facts({ confFiles: [{ file: '/etc/cni/net.d/10.conflist', text }] });
    expect(ids(file('{"plugins":[{"type":"bridge"},{"type":"portmap"}]}'))).toEqual(['conflist-missing-capability']);
    expect(ids(file('{"plugins":[{"type":"portmap","capabilities":{"portMappings":false}}]}'))).toEqual(['conflist-missing-capability']);
    expect(ids(file('{"type":"portmap"}'))).toEqual(['conflist-missing-capability']);
    expect(ids(file('{"plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}'))).toEqual([]);
    expect(ids(file('{"plugins":[{"type":"portmap",'))).toEqual(['conflist-invalid']);
    expect(ids(file('{"plugins":[{"type":"bridge"}]}'))).toEqual([]);
  });
});
