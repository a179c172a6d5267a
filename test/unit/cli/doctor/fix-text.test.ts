/**
 * Every finding's fix: prose that names no command inline, and commands that are whole (one per line,
 * never wrapped, no placeholder to fill in), over a node where nearly every check fires.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCacheEntry } from '../../../../src/cni/cache.js';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { checkDrift } from '../../../../src/cli/doctor/drift.js';
import type { Finding } from '../../../../src/cli/doctor/finding.js';
import { formatFinding } from '../../../../src/cli/doctor/report.js';
import { readConfDir } from '../../../../src/cli/gather.js';
import { parseNat } from '../../../../src/cli/iptables.js';
import { parseConfig } from '../../../../src/portmap/config.js';
import { parseCidr } from '../../../../src/net/ip.js';
import { buildPlan, ownerFor } from '../../../../src/portmap/plan.js';
import { recordOf } from '../../../../src/portmap/record.js';
import { cacheText } from '../../cni/cache.test.js';
import { REFERENCE_SAVE } from '../fixtures.js';
import { clusterIP, facts, ours } from './fixtures.js';

/** Commands people type, which a fix's prose must not hold (they go to `commands`). */
const INLINE_COMMAND = /\b(sysctl -w|nft (delete|add|list|-a)|ip6?tables(-nft|-legacy)?(-save)? -|apt-get|update-alternatives|kubectl|mv \/|rm \/|echo \S+ >)/;

async function everyFinding(): Promise<Finding[]> {
  const out: Finding[] = [];
  const node = facts(
    {
      ipForward: '0', ip6Forward: '0',
      tools: { nft: true, iptables: true, conntrack: false, ss: true, ip: true },
      routeLocalnet: [{ podIP: '10.244.0.5', dev: 'cni0', on: false }],
      listeners: [{ protocol: 'tcp', address: '*', port: 3306, process: 'mysqld (pid 7)' }],
      ipsetServices: [clusterIP], ipvsAddresses: ['10.96.0.10'],
      iptables: [
        { flavour: 'nft', family: 4, nat: parseNat(REFERENCE_SAVE.replace('--dport 30080', '--dport 8843')) },
      ],
    },
    { rows: [ours(), ours({ family: 6, podIP: 'fd00::5', localhost: false }), ours({ containerID: 'db2', podIP: '10.244.0.6' })] },
  );
  out.push(...diagnose(node));
  out.push(...diagnose(facts({
    iptables: [
      { flavour: 'legacy', family: 4, nat: parseNat('*nat\n-A PREROUTING -j KUBE-SERVICES\n-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT\nCOMMIT\n') },
      { flavour: 'nft', family: 4, nat: parseNat(REFERENCE_SAVE.replace(/^.*KUBE.*\n/gm, '')) },
    ],
  })));
  for (const d of ['nft-backend', 'typos', 'broken-first', 'broken-after', 'conf-with-list', 'no-capability']) {
    const f = facts();
    await readConfDir(f, join(import.meta.dirname, 'confdirs', d));
    out.push(...diagnose(f));
  }
  const config = parseConfig({ cniVersion: '1.0.0', name: 'podnet', type: 'portmap', runtimeConfig: { portMappings: [{ hostPort: 9090, containerPort: 90 }] } });
  const record = recordOf(buildPlan(config, ownerFor(config, 'c2', 'eth0'), { 4: parseCidr('10.244.0.6/24') }), { backend: 'nftables', netns: { path: '/p' }, bootId: 'b', now: 1 });
  const row = ours({ hostPort: 8080, containerPort: 80, network: 'podnet', containerID: 'other', podIP: '10.244.0.9' });
  const cache = [{ file: '/c/podnet-c1-eth0', entry: parseCacheEntry(cacheText()), alive: true }];
  out.push(...checkDrift({ rows: [row], records: [{ record, alive: true, file: '/d/2.json' }], invalidRecords: [{ file: '/d/x.json', error: 'not JSON' }], dataDir: '/d', cache, cacheDir: '/c' }));
  out.push(...checkDrift({ rows: [row], records: [{ record, alive: false, reason: 'gone', file: '/d/2.json' }], invalidRecords: [], dataDir: '/d', cache: [], cacheDir: '/c' }));
  return out;
}

describe('doctor: fixes', () => {
  it('prose names no command inline; each command is printed whole, on its own indented line', async () => {
    const found = await everyFinding();
    const seen = new Set(found.map((f) => f.id));
    // the node above provokes these (and more): the test covers what it claims to
    for (const id of ['ip-forward-off', 'route-localnet-off', 'tool-missing-conntrack', 'duplicate-hostport', 'kube-services-after-hostports',
      'iptables-flavour-split', 'service-port-captured', 'listener-shadowed', 'conflist-invalid-value', 'conflist-config-warning', 'conflist-invalid',
      'conf-holds-plugin-list', 'conflist-missing-capability', 'hostport-not-forwarded', 'hostport-held-by-gone-pod', 'forward-of-gone-pod',
      'record-invalid', 'record-of-gone-pod']) {
      expect(seen, id).toContain(id);
    }
    for (const f of found) {
      expect(f.fix, `${f.id}: ${f.fix}`).not.toMatch(INLINE_COMMAND);
      const lines = formatFinding(f);
      for (const c of f.commands ?? []) {
        expect(c, f.id).not.toMatch(/\n/);
        if (!c.startsWith('#')) expect(c, `${f.id}: a placeholder in ${c}`).not.toMatch(/<[a-z ]+>/);
        expect(lines, f.id).toContain(`        ${c}`);
      }
    }
  });
});
