import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/portmap/config.js';
import { CniError } from '../../../../src/cni/errors.js';
import { containerAddresses, parsePrevResult } from '../../../../src/cni/result.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import { decide, binariesFor, flavourOfBinary, legacyNatExists } from '../../../../src/backends/iptables/flavour.js';
import { canonical, entryKey, parseRules, sameRule, tokenize } from '../../../../src/backends/iptables/parse.js';
import {
  MULTIPORT_MAX, addFastDocument, addRepairDocument, chainName, delFastDocument, dnatChain, dnatRules, entryComment, entryRules,
  line, markOf, masqRule, parseEntryComment, quote, setMarkRule, teardownLines, validateConditions,
} from '../../../../src/backends/iptables/render.js';

const LONG_ID = 'icee6giejonei6sohng6ahngee7laquohquee9shiGo7fohferakah3Feiyoolu2pei7ciPhoh7shaoX6vai3vuf0ahfaeng8yohb9ceu0daez5hashee8ooYai5wa3y';

/** The reference's unit-test mappings (portmap_iptables_test.go). */
const REF_MAPPINGS = [
  { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
  { hostPort: 8081, containerPort: 80, protocol: 'tcp' },
  { hostPort: 8080, containerPort: 81, protocol: 'udp' },
  { hostPort: 8082, containerPort: 82, protocol: 'udp' },
  { hostPort: 8083, containerPort: 83, protocol: 'tcp', hostIP: '192.168.0.2' },
  { hostPort: 8084, containerPort: 84, protocol: 'tcp', hostIP: '0.0.0.0' },
  { hostPort: 8085, containerPort: 85, protocol: 'tcp', hostIP: '2001:db8:a::1' },
  { hostPort: 8086, containerPort: 86, protocol: 'tcp', hostIP: '::' },
];

const prev = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/p' }],
  ips: [
    { address: '10.0.0.2/24', interface: 0 },
    { address: '2001:db8::2/64', interface: 0 },
  ],
};

function plan(extra: Record<string, unknown> = {}, mappings: unknown[] = REF_MAPPINGS, name = 'test', id = LONG_ID) {
  const config = parseConfig({ cniVersion: '1.0.0', name, backend: 'iptables', ...extra, runtimeConfig: { portMappings: mappings }, prevResult: prev });
  return buildPlan(config, ownerFor(config, id, 'eth0'), containerAddresses(parsePrevResult(prev, '1.0.0').result, 'eth0'));
}
const fam = (p: ReturnType<typeof plan>, f: 4 | 6) => p.families.find((x) => x.family === f)!;
const words = (text: string) => text.split(' ');

describe('chain names and comments (the reference\'s vectors)', () => {
  it('hashes network name + container id with sha512 into 28 characters', () => {
    expect(chainName('DN-', 'testNetName', LONG_ID)).toBe('CNI-DN-bfd599665540dd91d5d28');
    expect(chainName('DN-', 'test', LONG_ID)).toBe('CNI-DN-67e92b96e692a494b6b85');
    expect(dnatChain('mynet', 'container-1')).toBe('CNI-DN-4b2fe54a72f0cde89f206');
    expect(chainName('SN-', 'mynet', 'container-1')).toMatch(/^CNI-SN-[0-9a-f]{21}$/);
  });

  it('writes the reference comment, cut to iptables\' 255 characters, and reads it back', () => {
    expect(entryComment('mynet', 'container-1')).toBe('dnat name: "mynet" id: "container-1"');
    expect(parseEntryComment('dnat name: "mynet" id: "container-1"')).toEqual({ network: 'mynet', containerID: 'container-1', truncated: false });
    const long = entryComment('net', 'x'.repeat(300));
    expect(long).toHaveLength(255);
    expect(long.endsWith('...')).toBe(true);
    expect(parseEntryComment(long)).toMatchObject({ network: 'net', truncated: true });
    expect(parseEntryComment('CNI portfwd masquerade mark')).toBeUndefined();
  });

  it('formats the mark like the reference (%#x/%#x)', () => {
    expect(markOf(13)).toBe('0x2000/0x2000');
    expect(markOf(5)).toBe('0x20/0x20');
    expect(markOf(0)).toBe('0x1/0x1');
    expect(markOf(31)).toBe('0x80000000/0x80000000');
    expect(setMarkRule(5)).toEqual(words('-m comment --comment') .concat(['CNI portfwd masquerade mark', '-j', 'MARK', '--set-xmark', '0x20/0x20']));
    expect(masqRule(5)).toEqual(words('-m mark --mark 0x20/0x20 -j MASQUERADE'));
  });
});

describe('entry rules and DN-chain rules (the reference\'s rule lists)', () => {
  const comment = `dnat name: "test" id: "${LONG_ID}"`;

  it('groups entry ports by sorted protocol, appends conditionsV4, jumps to CNI-DN-<hash>', () => {
    const p = plan({ conditionsV4: ['-a', 'b'] });
    const chain = 'CNI-DN-67e92b96e692a494b6b85';
    // The reference also lists 8085/8086 (IPv6 hostIPs) in the IPv4 rule; ours lists the family's ports only.
    expect(entryRules(p, fam(p, 4))).toEqual([
      ['-m', 'comment', '--comment', comment, '-m', 'multiport', '-p', 'tcp', '--destination-ports', '8080,8081,8083,8084', '-a', 'b', '-j', chain],
      ['-m', 'comment', '--comment', comment, '-m', 'multiport', '-p', 'udp', '--destination-ports', '8080,8082', '-a', 'b', '-j', chain],
    ]);
    expect(entryRules(p, fam(p, 6))[0]).toEqual(['-m', 'comment', '--comment', comment, '-m', 'multiport', '-p', 'tcp', '--destination-ports', '8080,8081,8085,8086', '-j', chain]);
  });

  it('splits more than 15 ports into several multiport rules', () => {
    const many = Array.from({ length: 33 }, (_, i) => ({ hostPort: 9000 + i, containerPort: 80, protocol: 'tcp' }));
    const p = plan({}, many);
    const rules = entryRules(p, fam(p, 4));
    expect(rules).toHaveLength(3);
    expect(rules.map((r) => r[r.indexOf('--destination-ports') + 1]!.split(',').length)).toEqual([MULTIPORT_MAX, MULTIPORT_MAX, 3]);
  });

  it('IPv4 with snat: hairpin (pod subnet), localhost, then DNAT, per mapping; other-family hostIPs skipped', () => {
    const p = plan();
    expect(dnatRules(p, fam(p, 4)).map((r) => r.join(' '))).toEqual([
      '-p tcp --dport 8080 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80',
      '-p tcp --dport 8081 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8081 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8081 -j DNAT --to-destination 10.0.0.2:80',
      '-p udp --dport 8080 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p udp --dport 8080 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p udp --dport 8080 -j DNAT --to-destination 10.0.0.2:81',
      '-p udp --dport 8082 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p udp --dport 8082 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p udp --dport 8082 -j DNAT --to-destination 10.0.0.2:82',
      '-p tcp --dport 8083 -d 192.168.0.2 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8083 -d 192.168.0.2 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8083 -d 192.168.0.2 -j DNAT --to-destination 10.0.0.2:83',
      '-p tcp --dport 8084 -s 10.0.0.0/24 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8084 -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8084 -j DNAT --to-destination 10.0.0.2:84',
    ]);
  });

  it('IPv6 with snat: no localhost rule, bracketed DNAT targets', () => {
    const p = plan();
    const rules = dnatRules(p, fam(p, 6)).map((r) => r.join(' '));
    expect(rules.slice(0, 2)).toEqual(['-p tcp --dport 8080 -s 2001:db8::/64 -j CNI-HOSTPORT-SETMARK', '-p tcp --dport 8080 -j DNAT --to-destination [2001:db8::2]:80']);
    expect(rules).toContain('-p tcp --dport 8085 -d 2001:db8:a::1 -s 2001:db8::/64 -j CNI-HOSTPORT-SETMARK');
    expect(rules).toContain('-p tcp --dport 8085 -d 2001:db8:a::1 -j DNAT --to-destination [2001:db8::2]:85');
    expect(rules).toContain('-p tcp --dport 8086 -s 2001:db8::/64 -j CNI-HOSTPORT-SETMARK');
    expect(rules.some((r) => r.includes('127.0.0.1'))).toBe(false);
    expect(rules).toHaveLength(12);
  });

  it('snat=false: only DNAT rules; externalSetMarkChain replaces the SETMARK target; masqAll marks every source', () => {
    const off = plan({ snat: false });
    expect(dnatRules(off, fam(off, 4)).every((r) => r.includes('DNAT'))).toBe(true);
    const ext = plan({ externalSetMarkChain: 'PLZ-SET-MARK' });
    expect(dnatRules(ext, fam(ext, 4))[0]).toEqual(words('-p tcp --dport 8080 -s 10.0.0.0/24 -j PLZ-SET-MARK'));
    expect(addFastDocument(ext, fam(ext, 4))).not.toContain('CNI-HOSTPORT-SETMARK');
    const all = plan({ masqAll: true });
    expect(dnatRules(all, fam(all, 4)).slice(0, 2).map((r) => r.join(' '))).toEqual([
      '-p tcp --dport 8080 -s 0.0.0.0/0 -j CNI-HOSTPORT-SETMARK',
      '-p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80',
    ]);
    expect(dnatRules(all, fam(all, 6))[0]).toEqual(words('-p tcp --dport 8080 -s ::/0 -j CNI-HOSTPORT-SETMARK'));
  });

  it('serviceCIDRs: RETURN rules of the family come first in the DN chain', () => {
    const p = plan({ serviceCIDRs: ['10.96.0.0/12', 'fd00:96::/108'] }, [{ hostPort: 3306, containerPort: 3306, protocol: 'tcp' }]);
    expect(dnatRules(p, fam(p, 4))[0]).toEqual(words('-d 10.96.0.0/12 -j RETURN'));
    expect(dnatRules(p, fam(p, 4))).toHaveLength(4);
    expect(dnatRules(p, fam(p, 6))[0]).toEqual(words('-d fd00:96::/108 -j RETURN'));
  });
});

describe('conditions validation', () => {
  const refused = (tokens: string[]) => {
    try {
      validateConditions(tokens, 'conditionsV4');
      return undefined;
    } catch (err) {
      return err as CniError;
    }
  };

  it('accepts matches', () => {
    for (const ok of [['!', '-d', '192.0.2.0/24'], ['-s', '10.0.0.0/8'], ['-m', 'addrtype', '!', '--dst-type', 'LOCAL'], ['-i', 'eth0'], ['-a', 'b']]) {
      expect(refused(ok)).toBeUndefined();
    }
  });

  it('refuses targets, chains, tables and commands, in short, clustered and abbreviated form (code 7)', () => {
    for (const bad of [['-j', 'ACCEPT'], ['--jump', 'X'], ['--jum', 'X'], ['-g', 'X'], ['-vjDROP'], ['-A', 'X'], ['-I', 'X'], ['-D', 'X'], ['-N', 'X'], ['-X'], ['-F'], ['-t', 'filter'], ['--table=filter'], ['-M', '/bin/sh'], ['--modprobe=/x'], ['COMMIT'], ['*filter'], [':X']]) {
      const err = refused(bad);
      expect(err, bad.join(' ')).toBeInstanceOf(CniError);
      expect(err!.code).toBe(7);
      expect(err!.message).toContain('conditionsV4');
    }
  });

  it('is applied when rendering', () => {
    const p = plan({ conditionsV4: ['!', '-d', '192.0.2.1', '-j', 'ACCEPT'] });
    expect(() => entryRules(p, fam(p, 4))).toThrow(/not allowed/);
  });
});

describe('restore documents', () => {
  const p = plan({}, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }], 'mynet', 'container-1');
  const chain = 'CNI-DN-4b2fe54a72f0cde89f206';

  it('quotes comments in restore syntax', () => {
    expect(quote('dnat name: "mynet" id: "container-1"')).toBe('"dnat name: \\"mynet\\" id: \\"container-1\\""');
    expect(quote('0x2000/0x2000')).toBe('0x2000/0x2000');
    expect(quote('')).toBe('""');
    const l = line('-A', 'CNI-HOSTPORT-DNAT', entryRules(p, fam(p, 4))[0]!);
    expect(l).toBe(`-A CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"mynet\\" id: \\"container-1\\"" -m multiport -p tcp --destination-ports 8080 -j ${chain}`);
    expect(tokenize(l).slice(2)).toEqual(entryRules(p, fam(p, 4))[0]);
  });

  it('ADD fast path: -N the chain, fill it, insert entries at 1, re-assert shared rules with -D/-A pairs', () => {
    const doc = addFastDocument(p, fam(p, 4)).split('\n');
    expect(doc[0]).toBe('*nat');
    expect(doc[1]).toBe(`-N ${chain}`);
    expect(doc).toContain(`-A ${chain} -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.2:80`);
    expect(doc.find((l) => l.startsWith('-I CNI-HOSTPORT-DNAT 1 '))).toContain(`-j ${chain}`);
    expect(doc).toContain('-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    expect(doc).toContain('-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    expect(doc).toContain('-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ');
    expect(doc).toContain('-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000');
    expect(doc.at(-2)).toBe('COMMIT');
    expect(doc.some((l) => l.startsWith(':'))).toBe(false); // no declaration: it would flush a shared chain
  });

  it('entries of one attachment keep their order when inserted at the top', () => {
    const two = plan({}, [{ hostPort: 1, containerPort: 1, protocol: 'udp' }, { hostPort: 2, containerPort: 2, protocol: 'tcp' }], 'n', 'c');
    const inserts = addFastDocument(two, fam(two, 4)).split('\n').filter((l) => l.startsWith('-I CNI-HOSTPORT-DNAT'));
    expect(inserts.map((l) => /-p (\w+)/.exec(l)![1])).toEqual(['udp', 'tcp']); // inserted last-first: tcp ends on top
  });

  it('DEL fast path deletes exactly the entry rules, then flushes and removes the chain', () => {
    expect(delFastDocument(p, fam(p, 4))).toBe(
      `*nat\n-D CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"mynet\\" id: \\"container-1\\"" -m multiport -p tcp --destination-ports 8080 -j ${chain}\n-F ${chain}\n-X ${chain}\nCOMMIT\n`,
    );
  });

  it('ADD repair on an empty table creates the skeleton before anything refers to it', () => {
    const doc = addRepairDocument(p, fam(p, 4), { chains: new Map() }, sameRule).split('\n');
    const at = (s: string) => doc.findIndex((l) => l.startsWith(s));
    expect(at('-N CNI-HOSTPORT-DNAT')).toBeLessThan(at('-A PREROUTING'));
    expect(at('-N CNI-HOSTPORT-MASQ')).toBeLessThan(at('-I POSTROUTING 1'));
    expect(at('-N CNI-HOSTPORT-SETMARK')).toBeLessThan(at(`-A ${chain}`));
    expect(at(`-N ${chain}`)).toBeLessThan(at('-I CNI-HOSTPORT-DNAT 1'));
  });

  it('ADD repair replaces an existing chain and its old entries, keeps good shared rules, moves a jump above KUBE-SERVICES', () => {
    const chains = new Map<string, string[][] | undefined>([
      ['PREROUTING', [words('-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT'), words('-m comment --comment x -j KUBE-SERVICES')]],
      ['OUTPUT', [words('-j KUBE-SERVICES'), words('-m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT')]],
      ['POSTROUTING', [['-m', 'comment', '--comment', 'CNI portfwd requiring masquerade', '-j', 'CNI-HOSTPORT-MASQ']]],
      ['CNI-HOSTPORT-SETMARK', [setMarkRule(13)]],
      ['CNI-HOSTPORT-MASQ', [words('-m mark --mark 0x2000/0x2000 -j MASQUERADE')]],
      ['CNI-HOSTPORT-DNAT', [['-p', 'tcp', '-m', 'comment', '--comment', 'dnat name: "mynet" id: "container-1"', '-m', 'multiport', '--dports', '9999', '-j', chain], words('-p tcp -j CNI-DN-other')]],
      [chain, [words('-p tcp -m tcp --dport 9999 -j DNAT --to-destination 10.0.0.2:1')]],
    ]);
    const doc = addRepairDocument(p, fam(p, 4), { chains }, sameRule).split('\n');
    expect(doc).toContain('-D PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    expect(doc.filter((l) => l.includes('OUTPUT'))).toEqual([]);
    expect(doc.filter((l) => /SETMARK -m|MASQ -m|POSTROUTING/.test(l))).toEqual([]);
    expect(doc).toContain(`-D CNI-HOSTPORT-DNAT -p tcp -m comment --comment "dnat name: \\"mynet\\" id: \\"container-1\\"" -m multiport --dports 9999 -j ${chain}`);
    expect(doc.some((l) => l.includes('CNI-DN-other'))).toBe(false);
    expect(doc).toContain(`-F ${chain}`);
    expect(doc.some((l) => l.startsWith('-N'))).toBe(false);
  });

  it('teardown deletes every referring rule, then flushes and removes the chains', () => {
    const lines = teardownLines([chain], [{ chain: 'CNI-HOSTPORT-DNAT', args: words(`-p tcp -j ${chain}`) }, { chain: 'CNI-HOSTPORT-DNAT', args: words('-p tcp -j CNI-DN-other') }]);
    expect(lines).toEqual([`-D CNI-HOSTPORT-DNAT -p tcp -j ${chain}`, `-F ${chain}`, `-X ${chain}`]);
  });
});

describe('reading iptables -S output', () => {
  const saved = [
    '-N CNI-DN-4b2fe54a72f0cde89f206',
    '-A CNI-DN-4b2fe54a72f0cde89f206 -s 10.88.0.0/16 -d 192.168.1.10/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK',
    '-A CNI-DN-4b2fe54a72f0cde89f206 -s 127.0.0.1/32 -d 192.168.1.10/32 -p udp -m udp --dport 5353 -j CNI-HOSTPORT-SETMARK',
    '-A CNI-DN-4b2fe54a72f0cde89f206 -d 192.168.1.10/32 -p udp -m udp --dport 5353 -j DNAT --to-destination 10.88.0.5:53',
    '-A CNI-HOSTPORT-DNAT -p udp -m comment --comment "dnat name: \\"mynet\\" id: \\"container-1\\"" -m multiport --dports 5353 -j CNI-DN-4b2fe54a72f0cde89f206',
  ].join('\n');

  it('parses rules with quoted comments', () => {
    const rules = parseRules(saved);
    expect(rules).toHaveLength(4);
    expect(rules[3]!.args).toContain('dnat name: "mynet" id: "container-1"');
  });

  it('compares rendered and saved forms of the same rule as equal (the reference\'s derived example)', () => {
    const p = plan({}, [{ hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '192.168.1.10' }], 'mynet', 'container-1');
    const pr = { ...p, families: p.families.map((f) => (f.family === 4 ? { ...f, pod: { ...f.pod, address: '10.88.0.5', network: '10.88.0.0', prefixLength: 16 } } : f)) };
    const want = dnatRules(pr, fam(pr, 4));
    const have = parseRules(saved).slice(0, 3).map((r) => r.args);
    expect(have.map(canonical)).toEqual(want.map(canonical));
    expect(entryKey(parseRules(saved)[3]!.args)).toBe(entryKey(entryRules(pr, fam(pr, 4))[0]!));
    expect(sameRule(words('-s 10.0.0.1 -j X'), words('-s 10.0.0.2 -j X'))).toBe(false);
    expect(sameRule(words('-p tcp --dport 1 -s 0.0.0.0/0 -j X'), words('-p tcp -m tcp --dport 1 -j X'))).toBe(true);
    expect(sameRule(words('! -d 10.0.0.0/8 -j X'), words('-d 10.0.0.0/8 -j X'))).toBe(false);
  });
});

describe('flavour choice', () => {
  const none = { kube: false, ours: false, oursUsed: false };
  it('follows kube-proxy, never splits our rules, else PATH', () => {
    expect(decide('nft', {}).name).toBe('nft');
    expect(decide('nft', { nft: none, legacy: none }).name).toBe('nft');
    expect(decide('legacy', { nft: none, legacy: none }).name).toBe('legacy');
    expect(decide('nft', { nft: none, legacy: { ...none, kube: true } }).name).toBe('legacy');
    expect(decide('legacy', { nft: { ...none, kube: true }, legacy: none }).name).toBe('nft');
    // our rules in nft while kube-proxy is in legacy: stay, with a warning
    const split = decide('nft', { nft: { ...none, ours: true, oursUsed: true }, legacy: { ...none, kube: true } });
    expect(split.name).toBe('nft');
    expect(split.warning).toMatch(/never split/);
    // our chain exists but is empty: kube-proxy wins
    expect(decide('nft', { nft: { ...none, ours: true }, legacy: { ...none, kube: true } }).name).toBe('legacy');
    // kube-proxy in both: where our chain is
    expect(decide('nft', { nft: { ...none, kube: true }, legacy: { ...none, kube: true, ours: true } }).name).toBe('legacy');
    expect(decide('unknown', {}).name).toBe('unknown');
  });

  it('names the binaries of a flavour (plain names for PATH\'s flavour)', () => {
    expect(binariesFor('nft', 'nft').restore[4]).toBe('iptables-restore');
    expect(binariesFor('legacy', 'nft').restore[6]).toBe('ip6tables-legacy-restore');
    expect(binariesFor('nft', 'legacy').iptables[4]).toBe('iptables-nft');
    expect(flavourOfBinary('/usr/sbin/xtables-nft-multi')).toBe('nft');
    expect(flavourOfBinary('/usr/sbin/xtables-legacy-multi')).toBe('legacy');
    expect(flavourOfBinary('/usr/sbin/iptables')).toBe('unknown');
    expect(legacyNatExists('/nonexistent')).toBe(false);
  });
});

describe('localhost guard document', () => {
  it('re-asserts the INPUT jump when it exists, inserts it otherwise, and always rewrites the chain', async () => {
    const { guardDocument } = await import('../../../../src/backends/iptables/render.js');
    const present = guardDocument(true);
    expect(present).toBe(
      '*filter\n:CNI-HOSTPORT-GUARD - [0:0]\n' +
        '-A CNI-HOSTPORT-GUARD ! -i lo -d 127.0.0.0/8 -m comment --comment "CNI portfwd localhost guard" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP\n' +
        '-D INPUT -j CNI-HOSTPORT-GUARD\n-I INPUT 1 -j CNI-HOSTPORT-GUARD\nCOMMIT\n',
    );
    expect(guardDocument(false)).not.toContain('-D INPUT');
    expect(guardDocument(false)).toContain('-I INPUT 1 -j CNI-HOSTPORT-GUARD');
  });
});
