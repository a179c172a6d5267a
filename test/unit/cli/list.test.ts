/** `portmap list`'s table. */
import { describe, expect, it } from 'vitest';
import { allRows } from '../../../src/cli/facts.js';
import { parseNat } from '../../../src/cli/iptables.js';
import { formatRows, withPods } from '../../../src/cli/list.js';
import { parseConfig } from '../../../src/portmap/config.js';
import { parseCidr } from '../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../src/portmap/plan.js';
import { recordOf } from '../../../src/portmap/record.js';
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

describe('portmap list: pod names from the records', () => {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'podnet', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80 }] } });
  const owner = ownerFor(config, 'c1', 'eth0');
  const record = recordOf(buildPlan(config, owner, { 4: parseCidr('10.244.0.5/24') }), {
    backend: 'nftables', netns: { path: '/var/run/netns/p' }, bootId: 'b', now: 1, pod: { namespace: 'default', name: 'web-0' },
  });
  const rows = allRows({ ruleset: parseRuleset(RULESET_JSON), iptables: [] });

  it('adds the pod of a row whose record names one (by owner id), and a POD column only then', () => {
    const ours = { ...rows[0]!, ownerId: owner.id, containerID: 'c1', network: 'podnet', ifname: 'eth0' };
    const named = withPods([ours, rows[1]!], [record]);
    expect(named[0]!.pod).toEqual({ namespace: 'default', name: 'web-0' });
    expect(named[1]!.pod).toBeUndefined();
    const text = formatRows(named);
    expect(text.split('\n')[0]).toMatch(/\s+BACKEND\s+POD$/);
    expect(text).toMatch(/c1\s.*default\/web-0\n/);
    expect(formatRows(rows).split('\n')[0]).not.toMatch(/POD/);
  });

  it('matches iptables rows by network and container id (they carry no owner id)', () => {
    const ipt = { ...rows[0]!, source: { kind: 'iptables' as const, flavour: 'nft' as const }, network: 'podnet', containerID: 'c1' };
    delete (ipt as { ownerId?: string }).ownerId;
    delete (ipt as { ifname?: string }).ifname;
    expect(withPods([ipt], [record])[0]!.pod).toEqual({ namespace: 'default', name: 'web-0' });
    expect(withPods([{ ...ipt, network: 'other' }], [record])[0]!.pod).toBeUndefined();
  });
});
