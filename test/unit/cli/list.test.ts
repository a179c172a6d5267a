/** `portmap list`'s table. */
import { describe, expect, it } from 'vitest';
import { allRows } from '../../../src/cli/facts.js';
import { parseNat } from '../../../src/cli/iptables.js';
import { formatRows } from '../../../src/cli/list.js';
import { parseRuleset } from '../../../src/cli/nft.js';
import { REFERENCE_SAVE, RULESET_JSON } from './fixtures.js';

describe('portmap list', () => {
  it('prints the list with its legend', () => {
    const rows = allRows({ ruleset: parseRuleset(RULESET_JSON), iptables: [{ flavour: 'legacy', family: 4, nat: parseNat(REFERENCE_SAVE) }] });
    const text = formatRows(rows);
    expect(text.split('\n')[0]).toMatch(/^PROTO\s+HOST ADDRESS\s+PORT\s+CONTAINER\s+NETWORK\s+CONTAINER ID\s+IF\s+CONNS\s+BACKEND$/);
    expect(text).toMatch(/tcp\s+\*\s+8080\s+->\s+10\.0\.0\.2:80\s+-\s+ctr-one\s+-\s+-\s+nftables \(reference plugin\)/);
    expect(text).toMatch(/udp\s+192\.168\.1\.10\s+5353\s+->\s+10\.88\.0\.5:53\s+mynet\s+container-1\s+-\s+-\s+iptables-legacy \(reference plugin\)/);
    expect(text).toContain('("*": every local IPv4 address)');
    expect(formatRows([])).toBe('No hostPort mappings on this node.\n');
  });

  it('prints a range as first-last on both sides, and the connections its element counted', () => {
    const rows = allRows({ ruleset: parseRuleset(RULESET_JSON), iptables: [] });
    const range = { ...rows[0]!, hostPort: 40000, lastHostPort: 56383, containerPort: 40000, connections: 12 };
    expect(formatRows([range])).toMatch(/40000-56383\s+->\s+[\d.]+:40000-56383\s+.*\s12\s+nftables/);
  });
});
