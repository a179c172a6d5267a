/** The both-backends policy, with fake drivers: only nftables, only iptables, both (CRI-O's meta manager tests). */
import { describe, expect, it } from 'vitest';
import { CompositeBackend } from '../../../src/plugin/composite-backend.js';
import { ownerOf } from '../../../src/portmap/owner.js';
import { FakeBackend } from '../../fakes/backend.js';
import { planOf } from '../../fakes/calls.js';

const owner = ownerOf('net', 'c1', 'eth0');
const scope = { network: 'net', attachments: [], settings: { afterServices: false, serviceCIDRs: [] } };

function both(primaryName: 'nftables' | 'iptables') {
  const primary = new FakeBackend(primaryName);
  const other = new FakeBackend(primaryName === 'nftables' ? 'iptables' : 'nftables');
  let loads = 0;
  const composite = new CompositeBackend(primary, async () => (loads++, other));
  return { primary, other, composite, loads: () => loads };
}

describe('CompositeBackend', () => {
  it('only the configured backend: every verb goes to it', async () => {
    const primary = new FakeBackend('nftables');
    const c = new CompositeBackend(primary);
    await c.add(planOf());
    await c.del(owner, planOf());
    await c.gc(scope);
    await c.check(planOf());
    await c.status();
    expect(primary.verbs()).toEqual(['add', 'del', 'gc', 'check', 'status']);
    expect(c.name).toBe('nftables');
  });

  it('nftables first: a DEL whose witness proves the attachment its own never loads iptables', async () => {
    const { primary, other, composite, loads } = both('nftables');
    primary.proves = true;
    expect(await composite.del(owner, planOf())).toBe('fast');
    expect(primary.verbs()).toEqual(['del']);
    expect(loads()).toBe(0);
    expect(other.calls).toEqual([]);
  });

  it('nftables first: without the proof (or without a plan), iptables is searched with the owner only', async () => {
    for (const plan of [planOf(), undefined]) {
      const { primary, other, composite } = both('nftables');
      expect(await composite.del(owner, plan)).toBe('slow');
      expect(primary.verbs()).toEqual(['del']);
      expect(other.calls).toEqual([{ verb: 'del', owner }]);
    }
  });

  it('iptables configured: both run, and a failure of the searched backend does not fail the DEL', async () => {
    const { primary, other, composite } = both('iptables');
    other.failing.set('del', new Error('nft: no such table'));
    await composite.del(owner, planOf());
    expect(primary.verbs()).toEqual(['del']);
    expect(other.verbs()).toEqual(['del']);
  });

  it('a failure of the configured backend fails the call', async () => {
    const { primary, composite } = both('iptables');
    primary.failing.set('del', new Error('iptables-restore failed'));
    await expect(composite.del(owner)).rejects.toThrow('iptables-restore failed');
  });

  it('GC: both backends; only the configured one gets the node-wide settings; the other may fail', async () => {
    const { primary, other, composite } = both('nftables');
    other.failing.set('gc', new Error('iptables missing'));
    await composite.gc(scope);
    expect(primary.calls).toEqual([{ verb: 'gc', scope }]);
    expect(other.calls).toEqual([{ verb: 'gc', scope: { network: 'net', attachments: [] } }]);
  });

  it('ADD, CHECK and STATUS never touch the other backend', async () => {
    const { other, composite, loads } = both('nftables');
    await composite.add(planOf());
    await composite.check(planOf());
    await composite.status();
    expect(loads()).toBe(0);
    expect(other.calls).toEqual([]);
  });
});
