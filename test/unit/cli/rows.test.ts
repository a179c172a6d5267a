/** Where a row was read, as people and --json see it. */
import { describe, expect, it } from 'vitest';
import { OUR_TABLE, isOurTable, rowJson, sourceLabel } from '../../../src/cli/rows.js';

describe('row sources', () => {
  it('labels each kind of table', () => {
    expect(sourceLabel(OUR_TABLE)).toBe('nft inet cni_portmap');
    expect(sourceLabel({ kind: 'nft', table: 'cni_hostport', family: 'ip6' })).toBe('nft ip6 cni_hostport');
    expect(sourceLabel({ kind: 'iptables', flavour: 'legacy' })).toBe('iptables-legacy');
    expect(isOurTable(OUR_TABLE)).toBe(true);
    expect(isOurTable({ kind: 'nft', table: 'cni_hostport', family: 'ip' })).toBe(false);
  });

  it('prints the label in --json, in the same place', () => {
    const row = {
      backend: 'iptables' as const, origin: 'reference' as const, source: { kind: 'iptables' as const, flavour: 'nft' as const },
      family: 4 as const, protocol: 'tcp', hostPort: 80, podIP: '10.0.0.2', containerPort: 8080,
    };
    const json = rowJson(row);
    expect(json.source).toBe('iptables-nft');
    expect(Object.keys(json)).toEqual(Object.keys(row));
  });
});
