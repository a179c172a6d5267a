/** `portmap uninstall`, the pure part: our nft table read back into plans, and the iptables documents. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TableState } from '../../../src/backends/nftables/parse.js';
import { PRIORITY_AFTER_SERVICES, PRIORITY_DEFAULT, conditionalRules, mapNames, ownerElements, podnetElements } from '../../../src/backends/nftables/render.js';
import { dnatChain } from '../../../src/backends/iptables/render.js';
import { parseInstallArgs } from '../../../src/cli/install.js';
import { cacheLookup, formatUninstall, parseUninstallArgs } from '../../../src/cli/uninstall.js';
import { chainsToRead, familyDocument, reconstruct } from '../../../src/cli/uninstall-plan.js';
import { parseCidr } from '../../../src/net/ip.js';
import { ownerOf } from '../../../src/portmap/owner.js';
import type { FamilyPlan, Plan } from '../../../src/portmap/plan.js';

const serviceCIDRs = [parseCidr('10.96.0.0/12'), parseCidr('fd00:96::/112')];

function plan(containerID: string, families: FamilyPlan[], afterServices = true): Plan {
  return { owner: ownerOf('podnet', containerID, 'eth0'), families, afterServices, serviceCIDRs, markMasqBit: 13 };
}

const fam4 = (address: string, extra: Partial<FamilyPlan> = {}): FamilyPlan => ({
  family: 4,
  pod: parseCidr(`${address}/24`),
  forwards: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }, { protocol: 'udp', hostPort: 8053, containerPort: 53, hostIP: '192.0.2.1' }],
  masquerade: 'hairpin',
  localhost: true,
  ...extra,
});
const fam6 = (address: string): FamilyPlan => ({
  family: 6, pod: parseCidr(`${address}/64`), forwards: [{ protocol: 'tcp', hostPort: 8080, containerPort: 80 }], masquerade: 'hairpin', localhost: false,
});

/** The table as the nftables backend leaves it after these plans' ADDs. */
function tableOf(plans: readonly Plan[], afterServices = true): TableState {
  const elements = plans.flatMap((p) => [...ownerElements(p), ...podnetElements(p)]);
  for (const c of serviceCIDRs) elements.push({ set: mapNames(c.family).servicecidrs, key: { prefix: { addr: c.network, len: c.prefixLength } } });
  return {
    chains: new Map([['prerouting', { type: 'nat', hook: 'prerouting', prio: afterServices ? PRIORITY_AFTER_SERVICES : PRIORITY_DEFAULT }]]),
    rules: [],
    elements,
  };
}

/** Forwards in a stable order; the pod's prefix only where a rule uses it (the hairpin source). */
const sortForwards = (p: Plan) => ({
  ...p,
  families: p.families.map((f) => ({
    ...f,
    pod: f.masquerade === 'hairpin' ? f.pod : f.pod.address,
    forwards: [...f.forwards].sort((a, b) => a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort || (a.hostIP ?? '').localeCompare(b.hostIP ?? '')),
  })),
});

describe('reading our table back into plans', () => {
  it('gives back exactly the plans the attachments were made from (dual-stack, hostIP, snat off, masqAll)', () => {
    const plans = [
      plan('c1', [fam4('10.244.0.2'), fam6('fd00:244::2')]),
      plan('c2', [fam4('10.244.0.3', { masquerade: 'none', localhost: false })]),
      plan('c3', [fam4('10.244.0.4', { masquerade: 'all', localhost: false, pod: parseCidr('10.244.0.4/32') })]),
    ];
    const got = reconstruct(tableOf(plans));
    expect(got.problems).toEqual([]);
    const byId = (ps: Plan[]) => [...ps].sort((a, b) => a.owner.comment.localeCompare(b.owner.comment)).map(sortForwards);
    expect(byId(got.plans)).toEqual(byId(plans));
    // Without a hairpin the prefix is the podnets set's (another pod's subnet), else a host route.
    expect(got.plans.find((p) => p.owner.containerID === 'c2')!.families[0]!.pod.prefixLength).toBe(24);
  });

  it('reads afterServices from the hook priority, and takes the exact subnet from the runtime\'s result when given', () => {
    const plans = [plan('c1', [fam4('10.244.0.2')], false)];
    const table = tableOf(plans, false);
    expect(reconstruct(table).plans[0]!.afterServices).toBe(false);
    const exact = reconstruct(table, { podCidr: (_o, a) => parseCidr(`${a}/26`) });
    expect(exact.plans[0]!.families[0]!.pod.prefixLength).toBe(26);
    expect(reconstruct(table, { markMasqBit: 5 }).plans[0]!.markMasqBit).toBe(5);
  });

  it('round-trips any set of attachments (property)', () => {
    const forward = fc.record({
      protocol: fc.constantFrom('tcp', 'udp', 'sctp'),
      hostPort: fc.integer({ min: 1, max: 65535 }),
      containerPort: fc.integer({ min: 1, max: 65535 }),
      hostIP: fc.option(fc.constantFrom('192.0.2.1', '192.0.2.10'), { nil: undefined }),
    });
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.uniqueArray(forward, { minLength: 1, maxLength: 5, selector: (f) => `${f.protocol}${f.hostPort}${f.hostIP}` }), fc.constantFrom('none', 'hairpin', 'all')), { minLength: 1, maxLength: 6 }), (specs) => {
        const plans = specs.map(([forwards, masquerade], i) => plan(`c${i}`, [{
          family: 4,
          pod: parseCidr(`10.244.0.${i + 2}/${masquerade === 'hairpin' ? 24 : 32}`),
          forwards: forwards.map((f) => (f.hostIP ? f : { protocol: f.protocol, hostPort: f.hostPort, containerPort: f.containerPort })),
          masquerade,
          localhost: masquerade === 'hairpin',
        }]));
        // Two attachments cannot hold the same key: keep the first owner of each (as the kernel would).
        const seen = new Set<string>();
        for (const p of plans) p.families[0]!.forwards = p.families[0]!.forwards.filter((f) => !seen.has(`${f.protocol}${f.hostPort}${f.hostIP}`) && seen.add(`${f.protocol}${f.hostPort}${f.hostIP}`));
        const kept = plans.filter((p) => p.families[0]!.forwards.length > 0);
        const got = reconstruct(tableOf(kept));
        expect(got.problems).toEqual([]);
        expect(got.plans.map(sortForwards)).toEqual([...kept].sort((a, b) => a.owner.comment.localeCompare(b.owner.comment)).map(sortForwards));
      }),
    );
  });

  it('refuses what it cannot convert: conditions, cut comments, elements without owner', () => {
    const withConditions: Plan = { ...plan('c9', [fam4('10.244.0.9', { conditions: ['iifname', 'eth0'] })]) };
    const t = tableOf([plan('c1', [fam4('10.244.0.2')])]);
    for (const cmd of conditionalRules(withConditions)) {
      const r = (cmd as { add: { rule: { chain: string; comment: string; expr: [] } } }).add.rule;
      t.rules.push({ chain: r.chain, handle: 1, comment: r.comment, expr: r.expr });
    }
    t.elements.push({ set: mapNames(4).hostportsAddr, key: { concat: ['tcp', 9999] }, value: '10.244.0.7', comment: 'junk' });
    const long = ownerOf('n'.repeat(120), 'c'.repeat(64), 'eth0');
    t.elements.push({ set: mapNames(4).hostportsAddr, key: { concat: ['tcp', 9998] }, value: '10.244.0.8', comment: long.comment });
    const got = reconstruct(t);
    expect(got.problems).toHaveLength(3);
    expect(got.problems.join('\n')).toMatch(/podnet\/c9\/eth0 has forwards with conditionsV4\/conditionsV6/);
    expect(got.problems.join('\n')).toMatch(/tcp \*:9999 \(IPv4\) has no readable owner comment/);
    expect(got.problems.join('\n')).toMatch(/tcp \*:9998 \(IPv4\): its owner comment was cut short/);
  });
});

describe('the iptables documents', () => {
  const plans = [plan('c1', [fam4('10.244.0.2'), fam6('fd00:244::2')]), plan('c2', [fam4('10.244.0.3')])];

  it('on an empty node: the shared chains once, then every attachment, the IPv4 localhost guard first', () => {
    const doc = familyDocument(plans, 4, { chains: new Map() });
    expect(doc.startsWith('*filter\n:CNI-HOSTPORT-GUARD - [0:0]\n')).toBe(true);
    expect(doc.match(/^-N CNI-HOSTPORT-DNAT$/gm)).toHaveLength(1);
    expect(doc.match(/^-N CNI-HOSTPORT-SETMARK$/gm)).toHaveLength(1);
    expect(doc.match(/^-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT$/gm)).toHaveLength(1);
    expect(doc.match(/^-I POSTROUTING 1 .*-j CNI-HOSTPORT-MASQ$/gm)).toHaveLength(1);
    for (const id of ['c1', 'c2']) {
      const chain = dnatChain('podnet', id);
      expect(doc).toContain(`-N ${chain}\n-A ${chain} -m comment --comment portmap-ts\n-A ${chain} -d 10.96.0.0/12 -j RETURN\n`);
      expect(doc).toMatch(new RegExp(`-I CNI-HOSTPORT-DNAT 1 -m comment --comment "dnat name: \\\\"podnet\\\\" id: \\\\"${id}\\\\"" -m multiport -p tcp --destination-ports 8080 -j ${chain}`));
    }
    expect(doc).toContain('-p udp --dport 8053 -d 192.0.2.1 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK');
    expect(doc.endsWith('COMMIT\n')).toBe(true);
    const v6 = familyDocument(plans, 6, { chains: new Map() });
    expect(v6.startsWith('*nat\n')).toBe(true);
    expect(v6).toContain(dnatChain('podnet', 'c1'));
    expect(v6).not.toContain(dnatChain('podnet', 'c2'));
    expect(v6).toContain('-d fd00:96::/112 -j RETURN');
    expect(familyDocument([], 4, { chains: new Map() })).toBe('');
  });

  it('run again over its own result: replaces the chains\' content and entry rules instead of adding twice', () => {
    const c1 = dnatChain('podnet', 'c1');
    const state = new Map<string, string[][] | undefined>([
      ['PREROUTING', [['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']]],
      ['OUTPUT', [['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'CNI-HOSTPORT-DNAT']]],
      ['CNI-HOSTPORT-DNAT', [['-m', 'comment', '--comment', 'dnat name: "podnet" id: "c1"', '-m', 'multiport', '-p', 'tcp', '--destination-ports', '8080', '-j', c1]]],
      [c1, [['-p', 'tcp', '--dport', '8080', '-j', 'DNAT', '--to-destination', '10.244.0.2:80']]],
    ]);
    const doc = familyDocument(plans, 4, { chains: state }, true);
    expect(doc).not.toContain('-N CNI-HOSTPORT-DNAT');
    expect(doc).not.toMatch(/^-A PREROUTING/m);
    expect(doc).toContain(`-D CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"podnet\\" id: \\"c1\\"" -m multiport -p tcp --destination-ports 8080 -j ${c1}\n`);
    expect(doc).toContain(`-F ${c1}\n`);
    expect(doc).toContain(`-N ${dnatChain('podnet', 'c2')}\n`);
    expect(doc).toContain('-D INPUT -j CNI-HOSTPORT-GUARD\n-I INPUT 1 -j CNI-HOSTPORT-GUARD');
    expect(chainsToRead(plans, 4)).toEqual(['PREROUTING', 'OUTPUT', 'POSTROUTING', 'CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-SETMARK', 'CNI-HOSTPORT-MASQ', c1, dnatChain('podnet', 'c2')]);
  });
});

describe('install and uninstall arguments', () => {
  it('parse, with defaults, = forms, comma lists, and refuse what does not go together', () => {
    expect(parseInstallArgs([])).toMatchObject({ cniBinDir: '/opt/cni/bin', cniConfDir: '/etc/cni/net.d', chain: false, dryRun: false });
    expect(parseInstallArgs(['--cni-bin-dir=/x/bin', '--chain', '--kubernetes', '--service-cidr', '10.96.0.0/12,fd00:96::/112', '--dry-run'])).toMatchObject({
      cniBinDir: '/x/bin', chain: true, kubernetes: true, serviceCIDRs: ['10.96.0.0/12', 'fd00:96::/112'], dryRun: true,
    });
    expect(parseInstallArgs(['--chain', '--kubernetes', '--service-cidr', '10.96.0.1/12'])).toEqual({ error: '--service-cidr 10.96.0.1/12: host bits are set (the range is 10.96.0.0/12)' });
    expect(parseInstallArgs(['--chain', '--kubernetes', '--service-cidr', 'nope'])).toHaveProperty('error');
    expect(parseInstallArgs(['--kubernetes'])).toEqual({ error: '--kubernetes and --service-cidr go with --chain' });
    expect(parseInstallArgs(['--repeat', '0'])).toHaveProperty('error');
    expect(parseInstallArgs(['--repeat', '60', '--dry-run'])).toHaveProperty('error');
    expect(parseInstallArgs(['--chain=yes'])).toEqual({ error: '--chain takes no value' });
    expect(parseInstallArgs(['--bogus'])).toEqual({ error: 'unknown option "--bogus"' });
    expect(parseInstallArgs(['--cni-bin-dir'])).toHaveProperty('error');
    expect(parseUninstallArgs(['--reference', '/usr/lib/cni/portmap', '--mark-masq-bit', '5', '--json'])).toMatchObject({ reference: '/usr/lib/cni/portmap', markMasqBit: 5, json: true, cniBinDir: '/opt/cni/bin' });
    expect(parseUninstallArgs(['--mark-masq-bit', '32'])).toHaveProperty('error');
  });
});

describe('the pod subnet from the runtime\'s cached result', () => {
  it('is read from CNI_CACHE_DIR/results/<network>-<containerID>-<ifname> (validated), else unknown', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portmap-cache-'));
    try {
      const result = { cniVersion: '1.0.0', ips: [{ address: '10.244.0.7/26' }, { address: 'fd00:244::7/64' }] };
      writeFileSync(join(dir, 'podnet-c1-eth0'), JSON.stringify({ kind: 'cniCacheV1', containerId: 'c1', ifName: 'eth0', networkName: 'podnet', result }));
      writeFileSync(join(dir, 'podnet-c2-eth0'), '{"result": {"ips": "nope"}}');
      const lookup = cacheLookup(dir);
      const who = { network: 'podnet', containerID: 'c1', ifname: 'eth0' };
      expect(lookup(who, '10.244.0.7')).toEqual(parseCidr('10.244.0.7/26'));
      expect(lookup(who, 'fd00:244::7')?.prefixLength).toBe(64);
      expect(lookup(who, '10.244.0.8')).toBeUndefined();
      expect(lookup({ ...who, containerID: 'c2' }, '10.244.0.7')).toBeUndefined();
      expect(lookup({ ...who, containerID: 'c3' }, '10.244.0.7')).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the uninstall report', () => {
  it('says what was done, or with --dry-run what would be, IPv6 pods in brackets', () => {
    const report = {
      dryRun: true,
      attachments: [{ network: 'podnet', containerID: 'c1', ifname: 'eth0', forwards: [
        { family: 4 as const, protocol: 'tcp', hostPort: 8080, containerPort: 80, pod: '10.244.0.2' },
        { family: 6 as const, protocol: 'udp', hostIP: '2001:db8::1', hostPort: 53, containerPort: 5353, pod: 'fd00::2' },
      ] }],
      iptables: [{ family: 4 as const, flavour: 'nft', restore: 'iptables-nft-restore', document: '*nat\nCOMMIT\n' }],
      binary: { path: '/opt/cni/bin/portmap', action: 'restore' as const, from: '/opt/cni/bin/portmap.orig', remove: ['/opt/cni/bin/portmap.previous'] },
      table: 'inet cni_portmap',
    };
    expect(formatUninstall(report)).toBe([
      '1 attachment(s) with 2 forward(s) in nft inet cni_portmap',
      '  podnet/c1/eth0: tcp *:8080 -> 10.244.0.2:80, udp 2001:db8::1:53 -> [fd00::2]:5353',
      'would write them to the IPv4 iptables (iptables-nft-restore --noflush)',
      '*nat\nCOMMIT',
      'would put /opt/cni/bin/portmap.orig back as /opt/cni/bin/portmap',
      'would remove /opt/cni/bin/portmap.previous',
      'would delete the nftables table inet cni_portmap',
      '',
    ].join('\n'));
    const done = formatUninstall({ ...report, dryRun: false, iptables: [], attachments: [], table: 'absent', binary: { ...report.binary, action: 'none', remove: [] } });
    expect(done).toBe('0 attachment(s) with 0 forward(s) in nft inet cni_portmap\n/opt/cni/bin/portmap is not this plugin already: left as it is\nno nftables table inet cni_portmap here (nothing to convert)\n');
  });
});
