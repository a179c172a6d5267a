/** The takeover warning: who held the host port, who has it now, in pod names where they are known. */
import { describe, expect, it } from 'vitest';
import type { PortTakeover } from '../../../src/backends/backend.js';
import { ownerOf } from '../../../src/portmap/owner.js';
import type { AttachmentRecord } from '../../../src/portmap/record.js';
import { takeoverWarnings } from '../../../src/plugin/takeovers.js';

const prev = ownerOf('podnet', 'aaa', 'eth0');
const now = { owner: ownerOf('podnet', 'bbb', 'eth0'), pod: { namespace: 'default', name: 'web-1' } };
const from = { id: prev.id, name: 'podnet/aaa/eth0' };
const record = { network: 'podnet', containerID: 'aaa', ifname: 'eth0', pod: { namespace: 'default', name: 'web-0' } } as AttachmentRecord;
const t = (family: 4 | 6, first: number, extra: Partial<PortTakeover> = {}): PortTakeover => ({ family, protocol: 'tcp', first, last: first, from, ...extra });

describe('takeoverWarnings', () => {
  it('one port of both families: one line naming both pods and attachments', () => {
    const lookups: string[] = [];
    const lines = takeoverWarnings([t(4, 8080), t(6, 8080)], now, (id) => (lookups.push(id), record));
    expect(lines).toEqual(['hostPort 8080/tcp (all addresses) was held by default/web-0 (podnet/aaa/eth0); now default/web-1 (podnet/bbb/eth0)']);
    expect(lookups).toEqual([prev.id]);
  });

  it('without records or pods: the attachments; a host address and a family are said as such', () => {
    const lines = takeoverWarnings(
      [t(4, 9000, { hostIP: '192.0.2.10' }), t(4, 8080), t(4, 8443), t(4, 40_000, { last: 40_100, protocol: 'udp' })],
      { owner: now.owner },
      () => undefined,
    );
    expect(lines).toEqual([
      'hostPort 9000/tcp on 192.0.2.10 was held by podnet/aaa/eth0; now podnet/bbb/eth0',
      'hostPorts 8080/tcp,8443/tcp,40000-40100/udp (all IPv4 addresses) were held by podnet/aaa/eth0; now podnet/bbb/eth0',
    ]);
  });

  it('an owner known only by id, or not at all; a record lookup that fails is no record', () => {
    const lines = takeoverWarnings(
      [t(6, 80, { from: { id: '0123456789abcdef' } }), t(6, 81, { from: {} })],
      { owner: now.owner },
      () => {
        throw new Error('EACCES');
      },
    );
    expect(lines).toEqual([
      'hostPort 80/tcp (all IPv6 addresses) was held by attachment 0123456789abcdef; now podnet/bbb/eth0',
      'hostPort 81/tcp (all IPv6 addresses) was held by an unknown owner; now podnet/bbb/eth0',
    ]);
  });

  it('thousands of ports from one holder: one line, the ports counted after 8', () => {
    const many = Array.from({ length: 2000 }, (_, i) => t(4, 10_000 + 2 * i));
    const [line, ...rest] = takeoverWarnings(many, now, () => record);
    expect(rest).toEqual([]);
    expect(line).toMatch(/^hostPorts 10000\/tcp,.*,10014\/tcp,\.\.\.\+1992 \(all IPv4 addresses\) were held by default\/web-0/);
  });
});
