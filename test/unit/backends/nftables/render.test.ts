import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/portmap/config.js';
import { CniError } from '../../../../src/cni/errors.js';
import { containerAddresses, parsePrevResult } from '../../../../src/cni/result.js';
import { parseNftConditions } from '../../../../src/backends/nftables/conditions.js';
import { casDelete, conditionalRules, delElements, ownerElements, witnessOf, podnetElements, serviceCidrCommands, skeleton, PRIORITY_AFTER_SERVICES, PRIORITY_DEFAULT } from '../../../../src/backends/nftables/render.js';
import { forwardRows as rowsOf } from '../../../../src/backends/nftables/read.js';
import { parseTable } from '../../../../src/backends/nftables/parse.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import { ownerOf, parseOwnerComment } from '../../../../src/portmap/owner.js';

const prev = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/p' }],
  ips: [
    { address: '10.244.0.5/24', interface: 0 },
    { address: 'fd00:244::5/64', interface: 0 },
  ],
};

function plan(extra: Record<string, unknown> = {}, mappings: unknown[] = [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]) {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'net', ...extra, runtimeConfig: { portMappings: mappings }, prevResult: prev });
  return buildPlan(config, ownerFor(config, 'c1', 'eth0'), containerAddresses(parsePrevResult(prev, '1.0.0').result, 'eth0'));
}

describe('owner identity', () => {
  it('hashes network + container + ifname, and reads its comment back', () => {
    const o = ownerOf('net', 'c1', 'eth0');
    expect(o.id).toMatch(/^[0-9a-f]{16}$/);
    expect(o.id).not.toBe(ownerOf('net', 'c1', 'eth1').id);
    expect(o.id).not.toBe(ownerOf('net2', 'c1', 'eth0').id);
    expect(parseOwnerComment(o.comment)).toEqual({ networkId: o.networkId, id: o.id, network: 'net', containerID: 'c1', ifname: 'eth0' });
    const long = ownerOf('n'.repeat(100), 'c'.repeat(64), 'eth0');
    expect(long.comment.length).toBe(128);
    expect(parseOwnerComment(long.comment)?.id).toBe(long.id);
    expect(parseOwnerComment('x y')).toBeUndefined();
  });
});

describe('plans', () => {
  it('applies hostIP family rules: other family skipped, unspecified = all of its family', () => {
    const p = plan({}, [
      { hostPort: 1, containerPort: 1, hostIP: '192.0.2.1' },
      { hostPort: 2, containerPort: 2, hostIP: '0.0.0.0' },
      { hostPort: 3, containerPort: 3, hostIP: '::' },
      { hostPort: 4, containerPort: 4 },
    ]);
    const v4 = p.families.find((f) => f.family === 4)!;
    const v6 = p.families.find((f) => f.family === 6)!;
    expect(v4.forwards.map((f) => [f.hostPort, f.hostIP])).toEqual([[1, '192.0.2.1'], [2, undefined], [4, undefined]]);
    expect(v6.forwards.map((f) => [f.hostPort, f.hostIP])).toEqual([[3, undefined], [4, undefined]]);
    expect(v4).toMatchObject({ masquerade: 'hairpin', localhost: true });
    expect(v6).toMatchObject({ masquerade: 'hairpin', localhost: false });
  });

  it('maps snat/masqAll to the masquerade mode', () => {
    expect(plan({ snat: false }).families[0]).toMatchObject({ masquerade: 'none', localhost: false });
    expect(plan({ masqAll: true }).families[0]).toMatchObject({ masquerade: 'all', localhost: false });
  });

  it('rejects one host port claimed twice with different container ports', () => {
    expect(() => plan({}, [{ hostPort: 1, containerPort: 1 }, { hostPort: 1, containerPort: 2 }])).toThrow(CniError);
    expect(plan({}, [{ hostPort: 1, containerPort: 1 }, { hostPort: 1, containerPort: 1 }]).families[0]!.forwards).toHaveLength(1);
  });
});

describe('nftables rendering', () => {
  it('places the base chains at dstnat, or after Services with afterServices', () => {
    const prio = (cmds: ReturnType<typeof skeleton>) =>
      cmds.map((c) => (c.add as { chain?: { name: string; prio?: number } } | undefined)?.chain).filter((c) => c?.name === 'prerouting')[0]?.prio;
    expect(prio(skeleton(PRIORITY_DEFAULT))).toBe(-100);
    expect(prio(skeleton(PRIORITY_AFTER_SERVICES))).toBe(-90);
  });

  it('gives each forward an address and a port element with the owner comment', () => {
    const p = plan({}, [{ hostPort: 8080, containerPort: 80 }, { hostPort: 53, containerPort: 5353, protocol: 'udp', hostIP: '192.0.2.1' }]);
    const els = ownerElements(p);
    expect(els.filter((e) => e.set === 'hostports4_addr')).toEqual([{ set: 'hostports4_addr', key: { concat: ['tcp', 8080] }, value: '10.244.0.5', comment: p.owner.comment }]);
    expect(els.filter((e) => e.set === 'hostipports4_port')).toEqual([{ set: 'hostipports4_port', key: { concat: ['192.0.2.1', 'udp', 53] }, value: 5353, comment: p.owner.comment }]);
    expect(els.filter((e) => e.set === 'snat4')).toEqual([{ set: 'snat4', key: '10.244.0.5', value: p.owner.tag, comment: p.owner.comment }]);
    expect(els.filter((e) => e.set === 'hostports6_addr')[0]?.value).toBe('fd00:244::5');
    expect(podnetElements(p).map((e) => e.key)).toEqual([{ prefix: { addr: '10.244.0.0', len: 24 } }, { prefix: { addr: 'fd00:244::', len: 64 } }]);
  });

  it('puts the owner\'s witness (its id as two 32-bit halves) first, and a DEL of deletes only', () => {
    const p = plan({}, [{ hostPort: 8080, containerPort: 80 }]);
    const els = ownerElements(p);
    const id = p.owner.id;
    expect(els[0]).toEqual(witnessOf(id, p.owner.comment));
    expect(els[0]?.key).toEqual({ concat: [Number.parseInt(id.slice(0, 8), 16), Number.parseInt(id.slice(8), 16)] });
    expect(els.filter((e) => e.set === 'owners')).toHaveLength(1);
    const del = delElements(els);
    expect(del).toHaveLength(els.length);
    expect(del.every((c) => Object.keys(c).join() === 'delete')).toBe(true);
    expect(ownerElements(plan({}, []))).toEqual([]);
  });

  it('compare-and-delete adds the exact old value before deleting the key', () => {
    const [add, del] = casDelete([{ set: 'snat4', key: '10.244.0.5', value: 7, comment: 'x' }]);
    expect(add).toEqual({ add: { element: { family: 'inet', table: 'cni_portmap', name: 'snat4', elem: [['10.244.0.5', 7]] } } });
    expect(del).toEqual({ delete: { element: { family: 'inet', table: 'cni_portmap', name: 'snat4', elem: ['10.244.0.5'] } } });
  });

  it('rewrites the node-wide Service CIDR sets from the config', () => {
    const cmds = serviceCidrCommands(plan({ serviceCIDRs: ['10.96.0.0/12'] }));
    expect(cmds).toContainEqual({ add: { element: { family: 'inet', table: 'cni_portmap', name: 'servicecidrs4', elem: [{ prefix: { addr: '10.96.0.0', len: 12 } }] } } });
    expect(cmds.filter((c) => 'flush' in c)).toHaveLength(2);
  });

  it('renders attachments with conditions as rules, not map elements', () => {
    const p = plan({ conditionsV4: ['ip', 'saddr', '!=', '10.0.0.0/8', 'iifname', 'up0'] });
    expect(ownerElements(p).some((e) => e.set.startsWith('hostports4'))).toBe(false);
    const rules = conditionalRules(p);
    expect(rules).toHaveLength(1);
    const expr = (rules[0]!.add as { rule: { expr: unknown[]; comment: string } }).rule;
    expect(expr.comment).toBe(p.owner.comment);
    expect(expr.expr).toContainEqual({ match: { op: '!=', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: { prefix: { addr: '10.0.0.0', len: 8 } } } });
    expect(expr.expr).toContainEqual({ dnat: { family: 'ip', addr: '10.244.0.5', port: 80 } });
  });

  it.each([
    [['ip', 'daddr', '1.2.3.4', 'accept'], '"accept" is not supported'],
    [['ip6', 'daddr', '::1'], 'does not match in IPv4'],
    [['ip', 'protocol', 'tcp'], 'is not supported'],
    [['ip', 'daddr', '1.2.3.4/33'], 'invalid prefix length'],
    [['iifname', 'a"b'], 'not an interface name'],
    [['meta', 'mark', '0x1ffffffff'], 'not a 32-bit mark'],
    [['ip', 'saddr'], 'a value is missing'],
  ])('rejects nft condition %j (code 7)', (tokens, why) => {
    try {
      parseNftConditions(tokens, 4);
      throw new Error('no error');
    } catch (e) {
      expect((e as CniError).code).toBe(7);
      expect((e as CniError).details).toContain(why);
    }
  });
});

describe('reading the table back', () => {
  it('turns a listing into forward rows with owners', () => {
    const o = ownerOf('net', 'c1', 'eth0');
    const listing = {
      nftables: [
        { metainfo: { json_schema_version: 1 } },
        { table: { family: 'inet', name: 'cni_portmap', handle: 1 } },
        { map: { family: 'inet', table: 'cni_portmap', name: 'hostports4_addr', type: ['inet_proto', 'inet_service'], map: 'ipv4_addr', elem: [[{ elem: { val: { concat: ['tcp', 8080] }, comment: o.comment } }, '10.244.0.5']] } },
        { map: { family: 'inet', table: 'cni_portmap', name: 'hostports4_port', type: ['inet_proto', 'inet_service'], map: 'inet_service', elem: [[{ elem: { val: { concat: ['tcp', 8080] }, comment: o.comment } }, 80]] } },
        { map: { family: 'inet', table: 'cni_portmap', name: 'hostipports6_addr', type: ['ipv6_addr', 'inet_proto', 'inet_service'], map: 'ipv6_addr', elem: [[{ concat: ['2001:db8::1', 'udp', 53] }, 'fd00::5']] } },
        { map: { family: 'inet', table: 'cni_portmap', name: 'hostipports6_port', type: ['ipv6_addr', 'inet_proto', 'inet_service'], map: 'inet_service', elem: [[{ concat: ['2001:db8::1', 'udp', 53] }, 5353]] } },
        { map: { family: 'inet', table: 'other', name: 'hostports4_addr', elem: [[{ concat: ['tcp', 1] }, '1.1.1.1']] } },
      ],
    };
    const rows = rowsOf(parseTable(JSON.stringify(listing)));
    expect(rows).toEqual([
      { backend: 'nftables', origin: 'portmap-ts', family: 4, protocol: 'tcp', hostPort: 8080, podIP: '10.244.0.5', containerPort: 80, ownerId: o.id, network: 'net', containerID: 'c1', ifname: 'eth0' },
      { backend: 'nftables', origin: 'portmap-ts', family: 6, protocol: 'udp', hostIP: '2001:db8::1', hostPort: 53, podIP: 'fd00::5', containerPort: 5353 },
    ]);
  });
});
