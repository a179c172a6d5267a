import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/portmap/config.js';
import { parseCidr } from '../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../src/portmap/plan.js';
import { newestRecord, parseRecord, planOfRecord, recordId, recordOf } from '../../../src/portmap/record.js';

const config = parseConfig({
  cniVersion: '1.0.0',
  name: 'net',
  type: 'portmap',
  afterServices: true,
  serviceCIDRs: ['10.96.0.0/12'],
  conditionsV6: ['ip6', 'saddr', '!=', '2001:db8::/64'],
  runtimeConfig: {
    portMappings: [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '192.0.2.1' },
      { hostPort: 8443, containerPort: 443, protocol: 'tcp', hostIP: '::' },
    ],
  },
});
const plan = buildPlan(config, ownerFor(config, 'c1', 'eth0'), { 4: parseCidr('10.244.0.5/24'), 6: parseCidr('fd00::5/64') });
const ctx = { backend: 'nftables' as const, netns: { path: '/var/run/netns/p1', dev: 4, ino: 4026532000 }, bootId: 'b', now: 1000 };

describe('attachment records', () => {
  it('round-trip: the plan rebuilt from a record (through JSON) is the plan that wrote it', () => {
    const rec = recordOf(plan, ctx);
    const back = parseRecord(JSON.parse(JSON.stringify(rec)));
    expect(back).toEqual(rec);
    expect(planOfRecord(back)).toEqual(plan);
    expect(recordId(back)).toBe(plan.owner.id);
  });

  it('keeps the Kubernetes pod name, and refuses one that is not a valid name', () => {
    const rec = recordOf(plan, { ...ctx, pod: { namespace: 'default', name: 'web-0' } });
    expect(parseRecord(JSON.parse(JSON.stringify(rec))).pod).toEqual({ namespace: 'default', name: 'web-0' });
    expect(() => parseRecord({ ...rec, pod: { namespace: 'default', name: 'Web 0' } })).toThrow(/invalid record: pod.name/);
  });

  it('refuses records that could reach a rule or a path with bad values', () => {
    const rec = JSON.parse(JSON.stringify(recordOf(plan, ctx))) as Record<string, unknown> & { families: Array<Record<string, unknown>> };
    const bad = (patch: (r: typeof rec) => void) => {
      const r = structuredClone(rec);
      patch(r);
      return () => parseRecord(r);
    };
    expect(bad((r) => (r.containerID = '../etc'))).toThrow(/containerID/);
    expect(bad((r) => (r.ifname = 'a/b'))).toThrow(/ifname/);
    expect(bad((r) => ((r.families[0]!.forwards as Array<Record<string, unknown>>)[0]!.hostPort = 70000))).toThrow(/hostPort/);
    expect(bad((r) => ((r.families[1]!.conditions as string[])[0] = 'ip6 saddr; flush ruleset'))).toThrow(/conditions/);
    expect(bad((r) => (r.families[0]!.pod = 'fd00::5/64'))).toThrow(/not IPv4/);
    expect(bad((r) => (r.v = 2))).toThrow(/v/);
    expect(bad((r) => (r.backend = 'ebpf'))).toThrow(/backend/);
  });

  it('newestRecord picks the last ADD (its node-wide settings apply)', () => {
    expect(newestRecord([{ created: 1 }, { created: 3 }, { created: 2 }])).toEqual({ created: 3 });
    expect(newestRecord([])).toBeUndefined();
  });
});
