import { describe, expect, it } from 'vitest';
import { CniError } from '../../../src/cni/errors.js';
import { type BackendChoice, backendFor, chooseBackend } from '../../../src/plugin/backend-choice.js';
import { CompositeBackend } from '../../../src/plugin/composite-backend.js';
import { parseConfig } from '../../../src/portmap/config.js';
import { FakeBackend } from '../../fakes/backend.js';

const config = (extra: Record<string, unknown> = {}) => parseConfig({ cniVersion: '1.0.0', name: 'net', ...extra });

function choice(programs: string[]): BackendChoice & { loaded: string[] } {
  const loaded: string[] = [];
  return {
    loaded,
    onPath: (p) => programs.includes(p),
    load: async (name) => (loaded.push(name), new FakeBackend(name)),
  };
}

describe('chooseBackend', () => {
  it('takes backend when set, else nftables when nft is installed, else iptables, else code 50', () => {
    expect(chooseBackend(config({ backend: 'iptables' }), () => true)).toBe('iptables');
    expect(chooseBackend(config(), (p) => p === 'nft')).toBe('nftables');
    expect(chooseBackend(config(), (p) => p === 'iptables-restore')).toBe('iptables');
    let err: unknown;
    try {
      chooseBackend(config(), () => false);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CniError);
    expect((err as CniError).code).toBe(50);
  });
});

describe('backendFor', () => {
  it('without backend and with both installed: the default plus a lazy search of the other one', async () => {
    const c = choice(['nft', 'iptables-restore']);
    const b = (await backendFor(config(), c)) as CompositeBackend;
    expect(b.name).toBe('nftables');
    expect(c.loaded).toEqual(['nftables']);
    await b.del({ network: 'net', containerID: 'c1', ifname: 'eth0', id: '0'.repeat(16), networkId: '0'.repeat(8), tag: 0, comment: '' });
    expect(c.loaded).toEqual(['nftables', 'iptables']);
  });

  it('a configured backend is never paired with the other one', async () => {
    const c = choice(['nft', 'iptables-restore']);
    const b = await backendFor(config({ backend: 'nftables' }), c);
    await b.gc({ network: 'net', attachments: [] });
    expect(c.loaded).toEqual(['nftables']);
  });

  it('no other backend to search when its program is missing', async () => {
    const c = choice(['nft']);
    const b = await backendFor(config(), c);
    await b.gc({ network: 'net', attachments: [] });
    expect(c.loaded).toEqual(['nftables']);
  });

  it("rejects the other backend's options for the chosen one (code 7) before loading anything", async () => {
    const c = choice(['nft']);
    await expect(backendFor(config({ externalSetMarkChain: 'MARKIT' }), c)).rejects.toMatchObject({ code: 7 });
    expect(c.loaded).toEqual([]);
  });
});
