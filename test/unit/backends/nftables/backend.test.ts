/** The nftables backend class with a recording fake runner: which nft processes a verb starts, and when. */
import { afterEach, describe, expect, it } from 'vitest';
import { NftablesBackend } from '../../../../src/backends/nftables/backend.js';
import { ownerElements } from '../../../../src/backends/nftables/render.js';
import { CniError } from '../../../../src/cni/errors.js';
import { TCP_8080, planOf } from '../../../fakes/calls.js';
import { listing } from '../../../fakes/nft-table.js';
import { FakeRunner, nftWith } from '../../../fakes/runner.js';
import { type CapturedLog, captureLog } from '../../../fakes/log.js';

const plan = planOf([TCP_8080]);
const NO_TABLE = { code: 1, stderr: 'Error: No such file or directory; did you mean table ...' };
/** What nft prints for each command of a transaction on a table that does not exist. */
const NO_TABLE_TX = { code: 1, stderr: Array(3).fill('internal:0:0-0: Error: No such file or directory\n').join('\n') };
const REFUSED = { code: 1, stderr: 'Error: Could not process rule: File exists' };
const verbs = (r: FakeRunner) => r.calls.map((c) => (c.args.includes('list') ? 'list' : c.args.includes('--check') ? 'check' : 'apply'));
const isTransaction = (c: { args: string[] }) => !c.args.includes('list');

let captured: CapturedLog | undefined;
afterEach(() => {
  captured?.stop();
  captured = undefined;
});

describe('NftablesBackend', () => {
  it('ADD on a ready skeleton: one nft transaction of additions, nothing read (the fast path)', async () => {
    const r = new FakeRunner();
    expect(await new NftablesBackend(r.run).add(plan)).toEqual({ path: 'fast', takeovers: [] });
    expect(verbs(r)).toEqual(['apply']);
    expect(r.calls[0]!.command).toBe('nft');
    expect(r.nftTransactions()[0]!.every((c) => 'add' in c || 'create' in c)).toBe(true);
  });

  it('ADD whose fast path fails (no ready mark, a key held by another owner): reads the table, writes one repair', async () => {
    const r = new FakeRunner().on(isTransaction, REFUSED, true).on(nftWith('list'), { stdout: listing() });
    expect(await new NftablesBackend(r.run).add(plan)).toEqual({ path: 'slow', takeovers: [] });
    expect(verbs(r)).toEqual(['apply', 'list', 'apply']);
    expect(JSON.stringify(r.nftTransactions()[1])).toContain('"flush":{"chain"');
  });

  it('the first ADD on a node: a slow path that says why, at debug, in words that are not an error', async () => {
    captured = captureLog('debug');
    const r = new FakeRunner().on(isTransaction, NO_TABLE_TX, true).on(nftWith('list'), NO_TABLE);
    const backend = new NftablesBackend(r.run);
    // Its own record is written while the fast path runs: that alone is nothing to heal.
    backend.heal = () => [plan];
    expect(await backend.add(plan)).toEqual({ path: 'slow', takeovers: [] });
    expect(verbs(r)).toEqual(['apply', 'list', 'apply']);
    const lines = captured.lines();
    expect(lines.map((l) => l.msg)).toEqual(['nftables ADD: fast path not taken: table inet cni_portmap does not exist yet (the first ADD on this node, or the ruleset was flushed): creating it']);
    expect(lines[0]!.level).toBe('debug');
    expect(JSON.stringify(lines)).not.toMatch(/error/i);
  });

  it('ADD that finds the table gone with other live attachments restores them with its own plan (the restored path)', async () => {
    const other = planOf([{ hostPort: 9090, containerPort: 90 }], {}, 'c2');
    const r = new FakeRunner().on(isTransaction, NO_TABLE_TX, true).on(nftWith('list'), NO_TABLE);
    const backend = new NftablesBackend(r.run);
    backend.heal = () => [other, plan];
    expect((await backend.add(plan)).path).toBe('restored');
    const restore = JSON.stringify(r.nftTransactions()[1]);
    expect(restore).toContain('/c2/eth0');
    expect(restore).toContain('/c1/eth0');
  });

  it('ADD taking a host port over reports it in host-port terms: per family, the previous owner by id and name', async () => {
    const other = planOf([TCP_8080, { hostPort: 9000, containerPort: 9000, hostIP: '192.0.2.10' }], {}, 'c2');
    const mine = planOf([TCP_8080, { hostPort: 9000, containerPort: 9000, hostIP: '192.0.2.10' }]);
    const r = new FakeRunner().on(isTransaction, REFUSED, true).on(nftWith('list'), { stdout: listing({ elements: ownerElements(other) }) });
    const { path, takeovers } = await new NftablesBackend(r.run).add(mine);
    expect(path).toBe('slow');
    const from = { id: other.owner.id, name: 'net/c2/eth0' };
    expect(takeovers).toEqual(expect.arrayContaining([
      { family: 4, protocol: 'tcp', first: 8080, last: 8080, from },
      { family: 6, protocol: 'tcp', first: 8080, last: 8080, from },
      { family: 4, protocol: 'tcp', first: 9000, last: 9000, hostIP: '192.0.2.10', from },
    ]));
    // The address map and the port map of one key are one takeover.
    expect(takeovers).toHaveLength(3);
  });

  it('ADD with conditions skips the fast path (rules are not additions-only)', async () => {
    const r = new FakeRunner().on(nftWith('list'), NO_TABLE);
    expect((await new NftablesBackend(r.run).add(planOf([TCP_8080], { conditionsV4: ['ip', 'saddr', '192.0.2.0/24'] }))).path).toBe('slow');
    expect(verbs(r)).toEqual(['list', 'apply']);
  });

  it('DEL with its witness: deletes only, answered at commit, and proves the attachment its own', async () => {
    const r = new FakeRunner();
    expect(await new NftablesBackend(r.run).del(plan.owner, plan)).toBe('fast');
    expect(r.calls).toHaveLength(1);
    const c = r.calls[0]!;
    // stdbuf (coreutils) is always installed: nft's unbuffered echo reports the commit.
    expect([c.command, ...c.args.slice(0, 4)]).toEqual(['stdbuf', '-o0', 'nft', '--echo', '-j']);
    expect(r.nftTransactions()[0]!.every((c) => 'delete' in c)).toBe(true);
  });

  it('DEL whose witness is gone: reads the table and compares each element; no proof (the slow path)', async () => {
    captured = captureLog('debug');
    const r = new FakeRunner().on(isTransaction, REFUSED, true).on(nftWith('list'), { stdout: listing({ elements: ownerElements(plan) }) });
    expect(await new NftablesBackend(r.run).del(plan.owner, plan)).toBe('slow');
    expect(captured.texts()).toEqual([
      "nftables DEL: fast path not taken: nft refused the exact deletes (Could not process rule: File exists): the attachment's ownership witness or one of its elements is gone (taken over by a newer ADD, or deleted before); comparing each element",
    ]);
    expect(verbs(r)).toEqual(['apply', 'list', 'apply']);
    const cas = r.nftTransactions()[1]!;
    expect(cas.filter((c) => 'add' in c)).toHaveLength(ownerElements(plan).length);
  });

  it('DEL without a table (flushed ruleset) or without a plan changes nothing and succeeds', async () => {
    const r = new FakeRunner().on(nftWith('list'), NO_TABLE);
    expect(await new NftablesBackend(r.run).del(plan.owner)).toBe('slow');
    expect(verbs(r)).toEqual(['list']);
  });

  it('CHECK fails with the first finding as a CNI error', async () => {
    const r = new FakeRunner().on(nftWith('list'), NO_TABLE);
    const err = await new NftablesBackend(r.run).check(plan).catch((e: unknown) => e as CniError);
    expect(err).toBeInstanceOf(CniError);
    expect(err?.message).toBe('nftables table inet cni_portmap not found');
  });

  it('STATUS names the kernel modules when the kernel refuses a feature (code 50)', async () => {
    const r = new FakeRunner().on(nftWith('list'), NO_TABLE).on(nftWith('--check'), { code: 1, stderr: 'Error: Could not process rule: Operation not supported' });
    const err = await new NftablesBackend(r.run).status().catch((e: unknown) => e as CniError);
    expect(err?.code).toBe(50);
    expect(err?.details).toContain('modprobe nf_tables');
  });

  it('a transaction too large for one argument goes through a private file', async () => {
    // Remapped ports: singles (a range publish would be one element, see the next test).
    const many = Array.from({ length: 2_000 }, (_, i) => ({ hostPort: 10_000 + i, containerPort: 20_000 + i }));
    const r = new FakeRunner();
    await new NftablesBackend(r.run).add(planOf(many));
    expect(r.calls[0]!.args).toContain('-f');
  });

  it('a range publish of 16,384 UDP ports is one small argument', async () => {
    const range = Array.from({ length: 16_384 }, (_, i) => ({ hostPort: 40_000 + i, containerPort: 40_000 + i, protocol: 'udp' }));
    const r = new FakeRunner();
    await new NftablesBackend(r.run).add(planOf(range));
    expect(r.calls).toHaveLength(1);
    expect(r.calls[0]!.args).not.toContain('-f');
    expect(r.calls[0]!.args.join(' ')).toContain('{"range":[40000,56383]}');
  });
});
