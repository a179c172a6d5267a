/**
 * Property test against the kernel: any config the parser accepts renders to rules the kernel accepts.
 * fast-check generates configs (mappings with hostIPs of both families, every protocol, snat/masqAll,
 * afterServices, serviceCIDRs, nft conditions from the supported grammar of conditions.ts), the planner
 * and the nftables renderer turn them into one transaction (skeleton + serviceCidrCommands + podnets +
 * ownerElements + conditionalRules), and `nft --check -j` in a fresh namespace must accept it. The
 * iptables renderer's ADD document is checked the same way with `iptables-restore --test --noflush`
 * (after one real ADD created the shared chains), when the iptables backend works.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/portmap/config.js';
import { CniError } from '../../src/cni/errors.js';
import {
  addElements, conditionalRules, ownerElements, podnetElements, priorityFor, serviceCidrCommands, skeleton,
} from '../../src/backends/nftables/render.js';
import { document } from '../../src/backends/nftables/json.js';
import { addFastDocument } from '../../src/backends/iptables/render.js';
import { parseCidr } from '../../src/net/ip.js';
import { type Plan, buildPlan, ownerFor } from '../../src/portmap/plan.js';
import { PLUGIN, TestBed, inNs } from './harness.js';

const SEED = 8558;

const port = fc.integer({ min: 1, max: 65535 });
const mapping = fc.record(
  {
    hostPort: port,
    containerPort: port,
    protocol: fc.constantFrom('tcp', 'udp', 'sctp', 'UDP'),
    hostIP: fc.oneof(fc.constant(''), fc.constant('0.0.0.0'), fc.constant('::'), fc.ipV4(), fc.ipV6()),
  },
  { requiredKeys: ['hostPort', 'containerPort'] },
);

/** One condition from the grammar of conditions.ts, for a family. */
const condition = (family: 4 | 6) => {
  const ip = family === 4 ? 'ip' : 'ip6';
  const addr = family === 4 ? fc.ipV4() : fc.ipV6();
  const len = fc.integer({ min: 0, max: family === 4 ? 32 : 128 });
  const op = fc.constantFrom([], ['=='], ['!='], ['eq'], ['ne']);
  return fc.oneof(
    fc.tuple(fc.constantFrom('saddr', 'daddr'), op, addr, fc.option(len)).map(([f, o, a, l]) => [ip, f, ...o, l === null ? a : `${a}/${l}`]),
    fc.tuple(fc.constantFrom('iifname', 'oifname'), op, fc.stringMatching(/^[A-Za-z0-9_.-]{1,14}\*?$/)).map(([k, o, n]) => [k, ...o, n]),
    fc.tuple(op, fc.oneof(fc.nat(0xffffffff).map(String), fc.nat(0xffffffff).map((n) => `0x${n.toString(16)}`))).map(([o, m]) => ['meta', 'mark', ...o, m]),
  );
};
const conditions = (family: 4 | 6) => fc.option(fc.array(condition(family), { minLength: 1, maxLength: 4 }).map((cs) => cs.flat()), { nil: undefined });

const configArb = fc.record({
  cniVersion: fc.constantFrom('0.3.1', '0.4.0', '1.0.0', '1.1.0'),
  name: fc.constantFrom('net', 'k8s-pod-network'),
  type: fc.constant('portmap'),
  snat: fc.boolean(),
  masqAll: fc.boolean(),
  afterServices: fc.boolean(),
  serviceCIDRs: fc.array(fc.oneof(fc.tuple(fc.ipV4(), fc.integer({ min: 8, max: 32 })), fc.tuple(fc.ipV6(), fc.integer({ min: 16, max: 128 }))), { maxLength: 4 }),
  conditionsV4: conditions(4),
  conditionsV6: conditions(6),
  runtimeConfig: fc.record({ portMappings: fc.array(mapping, { minLength: 1, maxLength: 30 }) }),
});

const pods = fc.record({ host4: fc.integer({ min: 2, max: 250 }), host6: fc.integer({ min: 2, max: 65535 }), v4: fc.boolean(), v6: fc.boolean() });

/** A plan from a generated config, or undefined when the parser or planner rejects it (a CniError). */
function planOf(raw: Record<string, unknown>, p: { host4: number; host6: number; v4: boolean; v6: boolean }, id: string): Plan | undefined {
  // serviceCIDRs must be network addresses: mask the generated address.
  const cidrs = (raw.serviceCIDRs as Array<[string, number]>).map(([a, l]) => {
    const c = parseCidr(`${a}/${l}`);
    return `${c.network}/${c.prefixLength}`;
  });
  try {
    const cfg = parseConfig({ ...raw, serviceCIDRs: cidrs });
    return buildPlan(cfg, ownerFor(cfg, id, 'eth0'), {
      ...(p.v4 || !p.v6 ? { 4: parseCidr(`10.244.0.${p.host4}/24`) } : {}),
      ...(p.v6 ? { 6: parseCidr(`fd00:244::${p.host6.toString(16)}/64`) } : {}),
    });
  } catch (err) {
    if (err instanceof CniError) return undefined;
    throw err;
  }
}

const nftTransaction = (plan: Plan): string =>
  document([
    ...skeleton(priorityFor(plan.afterServices)),
    ...serviceCidrCommands(plan),
    ...addElements(podnetElements(plan)),
    ...addElements(ownerElements(plan)),
    ...conditionalRules(plan),
  ]);

describe('rendered rules are accepted by the kernel (property)', () => {
  let bed: TestBed;
  let n = 0;

  beforeAll(async () => {
    bed = await TestBed.create({});
  }, 60_000);
  afterAll(() => bed?.destroy());

  it('nftables: nft --check accepts the transaction of every accepted config', async () => {
    let accepted = 0;
    let conditional = 0;
    await fc.assert(
      fc.asyncProperty(configArb, pods, async (raw, p) => {
        const plan = planOf(raw as unknown as Record<string, unknown>, p, `k${n++}`);
        if (!plan) return;
        accepted++;
        if (plan.families.some((f) => f.conditions)) conditional++;
        const file = join(bed.dir, 'nft.json');
        writeFileSync(file, nftTransaction(plan));
        const res = await inNs(bed.node, ['nft', '--check', '-j', '-f', file], { ok: [1] });
        expect(res.code, `${res.stderr}\n${JSON.stringify(raw)}`).toBe(0);
      }),
      { numRuns: Number(process.env.PROP_RUNS ?? 80), seed: Number(process.env.PROP_SEED ?? SEED) },
    );
    // The generator really exercises the renderer (most configs are accepted, some with conditions).
    expect(accepted).toBeGreaterThan(40);
    expect(conditional).toBeGreaterThan(5);
  }, 120_000);

  it('nftables: 65,535 mappings (the most accepted: every port, ranges and remapped singles mixed) are one transaction', async () => {
    // Runs of ports that keep their number (ranges), broken up by remapped ports, hostIPs and protocols.
    const maps = Array.from({ length: 65535 }, (_, i) => ({
      hostPort: 1 + i,
      containerPort: i % 97 === 0 ? 80 : 1 + i,
      protocol: ['tcp', 'udp', 'sctp'][Math.floor(i / 1000) % 3],
      hostIP: i % 5001 === 0 ? '192.0.2.7' : i % 7001 === 0 ? '2001:db8::7' : '',
    }));
    const cfg = parseConfig({ cniVersion: '1.0.0', name: 'net', runtimeConfig: { portMappings: maps } });
    const plan = buildPlan(cfg, ownerFor(cfg, 'huge', 'eth0'), { 4: parseCidr('10.244.0.9/24'), 6: parseCidr('fd00:244::9/64') });
    const file = join(bed.dir, 'huge.json');
    writeFileSync(file, nftTransaction(plan));
    const res = await inNs(bed.node, ['nft', '--check', '-j', '-f', file], { ok: [1] });
    expect(res.code, res.stderr).toBe(0);
  }, 120_000);

  it('nftables: 4096 remapped mappings on host addresses and wildcards, both families, are accepted as one transaction', async () => {
    const maps = Array.from({ length: 4096 }, (_, i) => ({ hostPort: 1 + i, containerPort: 80, protocol: ['tcp', 'udp', 'sctp'][i % 3], hostIP: i % 4 === 0 ? `192.0.2.${i % 250}` : i % 4 === 1 ? `2001:db8::${i.toString(16)}` : '' }));
    const cfg = parseConfig({ cniVersion: '1.0.0', name: 'net', runtimeConfig: { portMappings: maps } });
    const plan = buildPlan(cfg, ownerFor(cfg, 'big', 'eth0'), { 4: parseCidr('10.244.0.9/24'), 6: parseCidr('fd00:244::9/64') });
    const file = join(bed.dir, 'big.json');
    writeFileSync(file, nftTransaction(plan));
    const res = await inNs(bed.node, ['nft', '--check', '-j', '-f', file], { ok: [1] });
    expect(res.code, res.stderr).toBe(0);
  });

  it('nftables: networks with nested pod subnets and overlapping serviceCIDRs all ADD (interval sets refuse overlaps)', async () => {
    for (const [net, addr, hostPort] of [['neta', '10.245.0.5/24', 9001], ['netb', '10.245.0.6/16', 9002], ['netc', '10.245.1.7/24', 9003]] as const) {
      const res = await inNs(bed.node, [PLUGIN], {
        env: { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_CONTAINERID: `nest-${net}`, CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: bed.binDir },
        input: JSON.stringify({
          cniVersion: '1.0.0', name: net, type: 'portmap', backend: 'nftables', serviceCIDRs: ['10.96.0.0/12', '10.96.0.0/16', '10.96.0.0/12'],
          runtimeConfig: { portMappings: [{ hostPort, containerPort: 80 }] },
          prevResult: { cniVersion: '1.0.0', ips: [{ address: addr }] },
        }),
        ok: [1],
      });
      expect(res.code, res.stdout).toBe(0);
    }
    const set = (await inNs(bed.node, ['nft', 'list', 'set', 'inet', 'cni_portmap', 'podnets4'])).stdout;
    expect(set).toMatch(/10\.245\.0\.0\/16/);
    await inNs(bed.node, ['nft', 'delete', 'table', 'inet', 'cni_portmap']);
  });

  it('nftables: STATUS succeeds on a node whose table was made with afterServices (another chain priority)', async () => {
    const env = { PATH: process.env.PATH ?? '', CNI_CONTAINERID: 'prio', CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: bed.binDir };
    const add = await inNs(bed.node, [PLUGIN], {
      env: { ...env, CNI_COMMAND: 'ADD' },
      input: JSON.stringify({
        cniVersion: '1.0.0', name: 'net', type: 'portmap', backend: 'nftables', afterServices: true,
        runtimeConfig: { portMappings: [{ hostPort: 9100, containerPort: 80 }] },
        prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.244.0.9/24' }] },
      }),
      ok: [1],
    });
    expect(add.code, add.stdout).toBe(0);
    const status = await inNs(bed.node, [PLUGIN], { env: { ...env, CNI_COMMAND: 'STATUS' }, input: JSON.stringify({ cniVersion: '1.1.0', name: 'net', backend: 'nftables' }), ok: [1] });
    expect(status.code, status.stdout).toBe(0);
    await inNs(bed.node, ['nft', 'delete', 'table', 'inet', 'cni_portmap']);
  });

  it('iptables: iptables-restore --test accepts the ADD document of every accepted config', async (ctx) => {
    // One real ADD creates the shared chains the fast-path document expects.
    const boot = await inNs(bed.node, [PLUGIN], {
      env: { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'boot', CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: bed.binDir },
      input: JSON.stringify({
        cniVersion: '1.0.0', name: 'net', type: 'portmap', backend: 'iptables',
        runtimeConfig: { portMappings: [{ hostPort: 1, containerPort: 1 }] },
        prevResult: { cniVersion: '1.0.0', ips: [{ address: '10.244.0.2/24' }, { address: 'fd00:244::2/64' }] },
      }),
      ok: [1],
    });
    if (boot.code !== 0) ctx.skip();
    let accepted = 0;
    await fc.assert(
      fc.asyncProperty(configArb, pods, async (raw0, p) => {
        // iptables conditions are iptables syntax: drop the nft ones.
        const raw = { ...raw0, backend: 'iptables', conditionsV4: undefined, conditionsV6: undefined };
        const plan = planOf(raw as unknown as Record<string, unknown>, p, `i${n++}`);
        if (!plan) return;
        accepted++;
        for (const fp of plan.families) {
          const bin = fp.family === 4 ? 'iptables-restore' : 'ip6tables-restore';
          const res = await inNs(bed.node, [bin, '--test', '--noflush'], { input: addFastDocument(plan, fp), ok: [1, 2] });
          expect(res.code, `${res.stderr}\n${addFastDocument(plan, fp)}`).toBe(0);
        }
      }),
      { numRuns: 50, seed: SEED },
    );
    expect(accepted).toBeGreaterThan(25);
  }, 120_000);
});
