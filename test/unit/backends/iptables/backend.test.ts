/** The iptables backend class with a recording fake runner: restores per family, listings only on slow paths. */
import { describe, expect, it } from 'vitest';
import { IptablesBackend } from '../../../../src/backends/iptables/backend.js';
import { TOP_DNAT, dnatChain } from '../../../../src/backends/iptables/render.js';
import { CniError } from '../../../../src/cni/errors.js';
import { TCP_8080, planOf } from '../../../fakes/calls.js';
import { FakeRunner, type RecordedCall } from '../../../fakes/runner.js';

const plan = planOf([TCP_8080]);
const restores = (r: FakeRunner) => r.calls.filter((c) => c.command.endsWith('-restore'));
const listings = (r: FakeRunner) => r.calls.filter((c) => c.args.includes('-S'));
const isRestore = (c: RecordedCall) => c.command.endsWith('-restore');

describe('IptablesBackend', () => {
  it('ADD: one restore per family, nothing listed', async () => {
    const r = new FakeRunner();
    expect(await new IptablesBackend(r.run).add(plan)).toEqual({ path: 'fast', takeovers: [] });
    expect(restores(r).map((c) => c.command).sort()).toEqual(['ip6tables-restore', 'iptables-restore']);
    expect(listings(r).filter((c) => c.args.includes(TOP_DNAT) && c.args.length === 4)).toEqual([]);
    expect(restores(r).find((c) => c.command === 'iptables-restore')!.input).toContain(`-N ${dnatChain('net', 'c1')}`);
  });

  it('ADD whose fast document fails (a re-ADD): lists the chains involved and writes an exact repair', async () => {
    const r = new FakeRunner().on(isRestore, { code: 1, stderr: 'iptables-restore: line 2 failed' }, true);
    expect((await new IptablesBackend(r.run).add(planOf([TCP_8080], {}, 'c1', planOfPrevV4()))).path).toBe('slow');
    expect(listings(r).map((c) => c.args.at(-1))).toEqual(expect.arrayContaining(['PREROUTING', 'OUTPUT', TOP_DNAT, dnatChain('net', 'c1')]));
    expect(restores(r).length).toBeGreaterThanOrEqual(2);
  });

  it('the first ADD on a node (no chains yet): the slow path, with nothing to heal but its own record', async () => {
    const noChains = { code: 1, stderr: 'iptables: No chain/target/match by that name.' };
    const first = () => new FakeRunner()
      .on((c) => isRestore(c) && (c.input ?? '').includes('-N CNI-DN-'), { code: 1, stderr: "iptables-restore: line 3 failed\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information." }, true)
      .on((c) => c.args.includes('-S'), noChains);
    const v4 = planOf([TCP_8080], {}, 'c1', planOfPrevV4());
    const alone = new IptablesBackend(first().run);
    alone.heal = () => [v4];
    expect(await alone.add(v4)).toEqual({ path: 'slow', takeovers: [] });
    const r = first();
    const withOthers = new IptablesBackend(r.run);
    withOthers.heal = () => [planOf([{ hostPort: 9090, containerPort: 90 }], {}, 'c2', planOfPrevV4()), v4];
    expect((await withOthers.add(v4)).path).toBe('restored');
  });

  it('DEL with the plan: one restore per family deleting exactly what ADD made, no listing', async () => {
    const r = new FakeRunner();
    expect(await new IptablesBackend(r.run).del(plan.owner, plan)).toBe('fast');
    expect(restores(r)).toHaveLength(2);
    expect(restores(r)[0]!.input).toContain(`-X ${dnatChain('net', 'c1')}`);
  });

  it('DEL without mappings probes the attachment chain and stops when it does not exist', async () => {
    const r = new FakeRunner().on((c) => c.args.includes('-S'), { code: 1, stderr: 'iptables: No chain/target/match by that name.' });
    expect(await new IptablesBackend(r.run).del(plan.owner)).toBe('slow');
    expect(restores(r)).toEqual([]);
    expect(new Set(listings(r).map((c) => c.args.at(-1)))).toEqual(new Set([dnatChain('net', 'c1')]));
  });

  it('STATUS fails with code 50 only when no family can be used', async () => {
    const r = new FakeRunner().on(isRestore, { code: 2, stderr: "can't initialize iptables table `nat'" });
    const err = await new IptablesBackend(r.run).status().catch((e: unknown) => e as CniError);
    expect(err?.code).toBe(50);
    const ok = new FakeRunner().on((c) => c.command === 'ip6tables-restore', { code: 2, stderr: 'no ip6 nat' });
    await expect(new IptablesBackend(ok.run).status()).resolves.toBeUndefined();
  });
});

/** An IPv4-only pod. */
function planOfPrevV4() {
  return { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '/var/run/netns/p' }], ips: [{ address: '10.244.0.5/24', interface: 0 }] };
}
