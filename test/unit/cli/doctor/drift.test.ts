import { describe, expect, it } from 'vitest';
import { parseCacheEntry } from '../../../../src/cni/cache.js';
import { parseConfig } from '../../../../src/portmap/config.js';
import { parseCidr } from '../../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import { recordId, recordOf } from '../../../../src/portmap/record.js';
import { type DriftFacts, checkDrift } from '../../../../src/cli/doctor/drift.js';
import { type ListRow, OUR_TABLE } from '../../../../src/cli/rows.js';
import { cacheText, conflist } from '../../cni/cache.test.js';

const config = parseConfig({ cniVersion: '1.0.0', name: 'podnet', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort: 9090, containerPort: 90 }] } });
const plan = buildPlan(config, ownerFor(config, 'c2', 'eth0'), { 4: parseCidr('10.244.0.6/24') });
const record = recordOf(plan, { backend: 'nftables', netns: { path: '/var/run/netns/p2' }, bootId: 'b', now: 1 });

const planOf = (id: string, cidr: string, hostPort: number) => {
  const c = parseConfig({ cniVersion: '1.0.0', name: 'podnet', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] } });
  return buildPlan(c, ownerFor(c, id, 'eth0'), { 4: parseCidr(cidr) });
};

const row = (over: Partial<ListRow>): ListRow => ({
  backend: 'nftables', origin: 'portmap-ts', family: 4, protocol: 'tcp', hostPort: 8080, podIP: '10.244.0.5', containerPort: 80,
  network: 'podnet', containerID: 'c1', ifname: 'eth0', source: OUR_TABLE, ...over,
});

const facts = (over: Partial<DriftFacts>): DriftFacts => ({
  rows: [],
  records: [{ record, alive: true, file: '/d/x.json' }],
  invalidRecords: [],
  dataDir: '/d',
  cache: [{ file: '/c/podnet-c1-eth0', entry: parseCacheEntry(cacheText()), alive: true }],
  cacheDir: '/c',
  ...over,
});

const ids = (f: DriftFacts) => checkDrift(f).map((x) => x.id);

describe('drift audit', () => {
  it('names every pod whose hostPorts the kernel does not forward (after a flush), with portmap restore as the fix', () => {
    const found = checkDrift(facts({}));
    expect(found.map((f) => f.id)).toEqual(['hostport-not-forwarded', 'hostport-not-forwarded']);
    expect(found[0]!.message).toMatch(/podnet\/c2\/eth0 .* tcp\/9090/);
    expect(found[1]!.message).toMatch(/podnet\/c1\/eth0 .* tcp\/8080 .*libcni cache/);
    expect(found[0]!.fix).toMatch(/portmap restore/);
  });

  it('is quiet when every forward is there', () => {
    expect(ids(facts({ rows: [row({}), row({ hostPort: 9090, containerPort: 90, podIP: '10.244.0.6', containerID: 'c2' })] }))).toEqual([]);
  });

  it('a host port held by the leftovers of a pod the runtime does not know: an error, with the commands that free it', () => {
    const f = checkDrift(facts({ records: [], rows: [row({ podIP: '10.244.0.9', containerID: 'other' })] }));
    expect(f.map((x) => x.id)).toEqual(['hostport-held-by-gone-pod', 'forward-of-gone-pod']);
    expect(f[0]!.message).toMatch(/^hostPort 8080\/tcp is wanted by podnet\/c1\/eth0 \(10.244.0.5\), but the kernel forwards it to podnet\/other\/eth0 \(10.244.0.9\), whose pod is gone \(the runtime has no such attachment/);
    expect(f[0]!.commands).toEqual([
      "nft delete element inet cni_portmap hostports4_addr '{ tcp . 8080 }'",
      "nft delete element inet cni_portmap hostports4_port '{ tcp . 8080 }'",
      'portmap restore --data-dir /d --cni-cache-dir /c',
    ]);
  });

  it('a host port taken over by a second live pod: a warning naming both pods and since when, not "not forwarded"', () => {
    const pod = (name: string) => ({ namespace: 'shop', name });
    const older = { ...recordOf(planOf('c1', '10.244.0.5/24', 8080), { backend: 'nftables', netns: { path: '/p1' }, bootId: 'b', now: Date.UTC(2024, 4, 1, 10), pod: pod('web-a') }) };
    const newer = recordOf(planOf('c3', '10.244.0.7/24', 8080), { backend: 'nftables', netns: { path: '/p3' }, bootId: 'b', now: Date.UTC(2024, 4, 1, 11), pod: pod('web-b') });
    const taker = row({ podIP: '10.244.0.7', containerID: 'c3', ownerId: recordId(newer) });
    const f = checkDrift(facts({
      records: [{ record: older, alive: true, file: '/d/1.json' }, { record: newer, alive: true, file: '/d/3.json' }],
      cache: [], rows: [taker], self: '/opt/cni/bin/portmap',
    }));
    expect(f.map((x) => [x.id, x.severity])).toEqual([['hostport-taken-over', 'warning']]);
    expect(f[0]!.message).toBe(
      'hostPort 8080/tcp was held by pod shop/web-a (podnet/c1/eth0, 10.244.0.5) since 2024-05-01T10:00:00Z; ' +
        'now pod shop/web-b (podnet/c3/eth0, 10.244.0.7) has it, since 2024-05-01T11:00:00Z: two pods ask for the same ' +
        'host port, the newer ADD took it over, and pod shop/web-a receives nothing on it.',
    );
    expect(f[0]!.fix).toBe('Only one pod can have a host port: delete the older pod (pod shop/web-a), or change its hostPort. ' +
      'To give the port back to pod shop/web-a instead, delete pod shop/web-b and recreate pod shop/web-a.');
    expect(f[0]!.commands).toEqual(['# delete the older pod:', 'kubectl --namespace shop delete pod web-a']);
  });

  it('a port range the kernel holds as one interval forwards every port of it', () => {
    const c = parseConfig({ cniVersion: '1.0.0', name: 'podnet', type: 'portmap', runtimeConfig: { portMappings: [40000, 40001, 40002].map((p) => ({ hostPort: p, containerPort: p, protocol: 'udp' })) } });
    const rec = recordOf(buildPlan(c, ownerFor(c, 'c2', 'eth0'), { 4: parseCidr('10.244.0.6/24') }), { backend: 'nftables', netns: { path: '/p' }, bootId: 'b', now: 1 });
    const interval = row({ protocol: 'udp', hostPort: 40000, lastHostPort: 40002, containerPort: 40000, podIP: '10.244.0.6', containerID: 'c2' });
    expect(ids(facts({ records: [{ record: rec, alive: true, file: '/d/r.json' }], cache: [], rows: [interval] }))).toEqual([]);
    expect(checkDrift(facts({ records: [{ record: rec, alive: true, file: '/d/r.json' }], cache: [], rows: [{ ...interval, lastHostPort: 40001 }] }))[0]!.message).toMatch(/udp\/40002 that the kernel does not forward/);
  });

  it('tells a pod whose conflist chains no portmap', () => {
    const noPortmap = { ...conflist, plugins: [conflist.plugins[0]] };
    const f = checkDrift(facts({ records: [], cache: [{ file: 'x', entry: parseCacheEntry(cacheText({}, noPortmap)), alive: true }] }));
    expect(f.map((x) => x.id)).toEqual(['hostport-not-chained']);
    expect(f[0]!.message).toMatch(/chains no portmap/);
  });

  it('reports forwards and records of pods that are gone; dead cache entries are no wants', () => {
    const f = facts({
      records: [{ record, alive: false, reason: 'its network namespace /var/run/netns/p2 is gone', file: '/d/x.json' }],
      cache: [{ file: 'x', entry: parseCacheEntry(cacheText()), alive: false }],
      rows: [row({ hostPort: 9090, containerPort: 90, podIP: '10.244.0.6', containerID: 'c2' })],
    });
    expect(ids(f)).toEqual(['forward-of-gone-pod', 'record-of-gone-pod']);
  });

  it('judges nothing against the kernel when its rules could not be read', () => {
    const f = facts({});
    delete f.rows;
    expect(ids(f)).toEqual([]);
  });

  it('finds the silent no-ops of the conf directory', () => {
    const bridgeOnly = JSON.stringify({ cniVersion: '1.0.0', name: 'a', plugins: [{ type: 'bridge' }] });
    const withPortmap = JSON.stringify(conflist);
    expect(ids(facts({ rows: undefined, confFiles: [{ file: '/n/10-a.conflist', text: bridgeOnly }, { file: '/n/20-b.conflist', text: withPortmap }] }))).toEqual(['loaded-conflist-without-portmap']);
    // a file the runtime cannot load is not the one it loads (conflists.ts reports that file)
    expect(ids(facts({ rows: undefined, confFiles: [{ file: '/n/05-b.conf', text: withPortmap }, { file: '/n/10-a.conflist', text: bridgeOnly }] }))).toEqual(['loaded-conflist-without-portmap']);
    expect(ids(facts({ rows: undefined, confFiles: [{ file: '/n/10-b.conflist', text: withPortmap }, { file: '/n/20-a.conflist', text: bridgeOnly }] }))).toEqual([]);
  });
});
