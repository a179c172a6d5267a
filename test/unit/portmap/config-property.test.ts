/**
 * Property-based tests of the protocol layer and the planner (fast-check, pure: no process, no kernel).
 *   - parseConfig never throws anything but a CniError, whatever JSON object it is given;
 *   - runCni answers any stdin and environment with exit 0 or exactly one JSON error object;
 *   - configs built from the accepted grammar are accepted, and their plans are sane: every forward
 *     comes from a mapping of its family, ports stay in range, keys are unique, and the nftables
 *     elements carry the owner and exactly the plan's forwards.
 * The kernel side (rendered rules are accepted by nft) is test/integration/render-kernel.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/portmap/config.js';
import { CniError } from '../../../src/cni/errors.js';
import { type PluginVerbs, runCni } from '../../../src/cni/skel.js';
import { ownerElements } from '../../../src/backends/nftables/render.js';
import { ipFamily, parseCidr } from '../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../src/portmap/plan.js';

const SEED = 20261125;
const params = (numRuns: number) => ({ numRuns, seed: SEED });

const versions = fc.constantFrom('0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0');
const ipv4 = fc.ipV4();
const ipv6 = fc.ipV6();
const port = fc.integer({ min: 1, max: 65535 });
const protocol = fc.constantFrom('tcp', 'udp', 'sctp', 'TCP', 'Udp', '');

export const mappingArb = fc.record(
  {
    hostPort: port,
    containerPort: port,
    protocol,
    hostIP: fc.oneof(fc.constant(''), fc.constant('0.0.0.0'), fc.constant('::'), ipv4, ipv6),
  },
  { requiredKeys: ['hostPort', 'containerPort'] },
);

/** A value of "almost right" shape for any config key: the place where parsers crash. */
const nasty = fc.oneof(
  fc.jsonValue(),
  fc.string(),
  fc.constantFrom(0, -1, 65536, 1.5, 1e308, -0, '', ' ', ';', '"', '\u0000', 'tcp; drop', '1.2.3.4 ; drop', '::1 accept', null, true, [], {}),
);

const validishConfig = fc.record({
  cniVersion: versions,
  name: fc.constantFrom('net', 'k8s-pod-network', 'a.b_c-1'),
  type: fc.constant('portmap'),
  backend: fc.constantFrom(undefined, 'nftables', 'iptables'),
  snat: fc.constantFrom(undefined, true, false),
  masqAll: fc.constantFrom(undefined, true, false),
  afterServices: fc.constantFrom(undefined, true, false),
  serviceCIDRs: fc.constantFrom(undefined, [], ['10.96.0.0/12'], ['10.96.0.0/12', 'fd00:96::/108']),
  runtimeConfig: fc.record({ portMappings: fc.array(mappingArb, { maxLength: 12 }) }),
});

/** Valid configs with random keys replaced, dropped or added at any depth of the mappings. */
const mutatedConfig = fc
  .tuple(validishConfig, fc.constantFrom('cniVersion', 'name', 'backend', 'snat', 'markMasqBit', 'externalSetMarkChain', 'conditionsV4', 'conditionsV6', 'serviceCIDRs', 'runtimeConfig', 'prevResult', 'cni.dev/valid-attachments', 'HostPort', 'RUNTIMECONFIG'), nasty, fc.nat(11), fc.constantFrom('hostPort', 'containerPort', 'protocol', 'hostIP', 'HostIP', 'Protocol'), nasty)
  .map(([cfg, key, value, idx, mkey, mvalue]) => {
    const out: Record<string, unknown> = { ...cfg, [key]: value };
    const maps = cfg.runtimeConfig.portMappings;
    if (maps.length > 0 && key !== 'runtimeConfig') {
      const copy = maps.map((m) => ({ ...m })) as Array<Record<string, unknown>>;
      copy[idx % copy.length]![mkey] = mvalue;
      out.runtimeConfig = { portMappings: copy };
    }
    return out;
  });

describe('config parser properties', () => {
  it('never throws anything but a CniError, on arbitrary objects', () => {
    fc.assert(
      fc.property(fc.oneof(fc.dictionary(fc.string(), nasty), mutatedConfig), (obj) => {
        try {
          parseConfig(obj as Record<string, unknown>);
        } catch (err) {
          if (!(err instanceof CniError)) throw err;
          expect([1, 2, 6, 7]).toContain(err.code);
          expect(err.message.length).toBeGreaterThan(0);
        }
      }),
      params(1500),
    );
  });

  it('runCni answers any stdin and environment with success or exactly one JSON error object', async () => {
    const verbs: PluginVerbs = {
      add: async () => ({ cniVersion: '1.0.0' }),
      del: async () => undefined,
      check: async () => undefined,
      gc: async () => undefined,
      status: async () => undefined,
    };
    const envArb = fc.record({
      CNI_COMMAND: fc.constantFrom('ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'add', 'FOO', 'ADD;DEL'),
      CNI_CONTAINERID: fc.oneof(fc.constantFrom('abc', '', 'a b', 'a"b', 'x;drop'), fc.string()),
      CNI_NETNS: fc.constantFrom('/var/run/netns/none', ''),
      CNI_IFNAME: fc.oneof(fc.constantFrom('eth0', '', 'a/b', '0123456789abcdef', '..'), fc.string({ maxLength: 20 })),
      CNI_PATH: fc.constantFrom('/opt/cni/bin', ''),
    });
    const stdinArb = fc.oneof(
      fc.string(),
      mutatedConfig.map((c) => JSON.stringify(c)),
      mutatedConfig.chain((c) => {
        const text = JSON.stringify(c);
        return fc.nat(text.length).map((n) => text.slice(0, n));
      }),
    );
    await fc.assert(
      fc.asyncProperty(envArb, stdinArb, async (env, stdin) => {
        const printed: string[] = [];
        const status = await runCni({ env, stdin: async () => stdin, stdout: (t) => printed.push(t) }, async () => verbs);
        if (status === 0) return;
        expect(status).toBe(1);
        expect(printed).toHaveLength(1);
        const err = JSON.parse(printed[0]!) as Record<string, unknown>;
        expect(Object.keys(err).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
        expect([1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999]).toContain(err.code);
        expect(err.code).not.toBe(999); // a fake plugin never fails: 999 would be a parser crash
      }),
      params(1500),
    );
  });

  it('configs from the accepted grammar are accepted and planned sanely', () => {
    const addrs = fc.record({ v4: fc.boolean(), v6: fc.boolean(), host4: fc.integer({ min: 2, max: 250 }), host6: fc.integer({ min: 2, max: 65535 }) });
    fc.assert(
      fc.property(validishConfig, addrs, fc.constantFrom('c1', 'abc-123', 'x'.repeat(64)), (raw, a, containerID) => {
        const cfg = parseConfig(raw as unknown as Record<string, unknown>);
        expect(cfg.portMappings).toHaveLength(raw.runtimeConfig.portMappings.length);
        const addresses = {
          ...(a.v4 ? { 4: parseCidr(`10.244.0.${a.host4}/24`) } : {}),
          ...(a.v6 ? { 6: parseCidr(`fd00:244::${a.host6.toString(16)}/64`) } : {}),
        };
        let plan;
        try {
          plan = buildPlan(cfg, ownerFor(cfg, containerID, 'eth0'), addresses);
        } catch (err) {
          // The one planning error: two container ports for the same host port key.
          expect(err).toBeInstanceOf(CniError);
          expect((err as CniError).message).toMatch(/^duplicate port mapping/);
          return;
        }
        for (const fp of plan.families) {
          expect(addresses[fp.family]).toBeDefined();
          const keys = new Set<string>();
          for (const f of fp.forwards) {
            expect(f.hostPort).toBeGreaterThanOrEqual(1);
            expect(f.hostPort).toBeLessThanOrEqual(65535);
            expect(['tcp', 'udp', 'sctp']).toContain(f.protocol);
            if (f.hostIP) expect(ipFamily(f.hostIP)).toBe(fp.family);
            const key = `${f.hostIP ?? '*'} ${f.protocol} ${f.hostPort}`;
            expect(keys.has(key)).toBe(false);
            keys.add(key);
            // Every forward comes from a mapping.
            expect(cfg.portMappings.some((m) => m.hostPort === f.hostPort && m.containerPort === f.containerPort && m.protocol === f.protocol)).toBe(true);
          }
          // Every mapping of this family (or of every family) is forwarded.
          for (const m of cfg.portMappings) {
            if (m.hostIP && ipFamily(m.hostIP) !== fp.family) continue;
            expect(fp.forwards.some((f) => f.hostPort === m.hostPort && f.protocol === m.protocol)).toBe(true);
          }
          expect(fp.localhost).toBe(fp.family === 4 && cfg.snat && !cfg.masqAll);
        }
        // nftables elements: two per forward (address and port), one masquerade entry, all with the owner.
        const els = ownerElements(plan);
        const forwards = plan.families.reduce((n, fp) => n + fp.forwards.length, 0);
        const masq = plan.families.filter((fp) => fp.masquerade !== 'none').length;
        // Two per forward, one per masquerade, and the owner's witness when there is any.
        const owned = 2 * forwards + masq;
        expect(els).toHaveLength(owned > 0 ? owned + 1 : 0);
        for (const e of els) expect(e.comment).toMatch(/^[0-9a-f]{8}:[0-9a-f]{16} /);
        expect(els.every((e) => (e.comment ?? '').length <= 128)).toBe(true);
      }),
      params(800),
    );
  });
});
