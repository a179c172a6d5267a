/**
 * The nftables backend against real traffic: the shared scenarios (backend-scenarios.ts) plus what is
 * specific to it: CHECK after a flush, rebuilding a deleted table, snat/masqAll and nft conditions.
 */
import { renameSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendScenarios } from './backend-scenarios.js';
import { CLIENT_V4, NODE_V4, NODE_V6, TestBed, inNs, reply } from './harness.js';

/** Hides the bed's attachment records (nothing to restore from); the returned function puts them back. */
function renameRecords(bed: TestBed): () => void {
  renameSync(bed.dataDir, `${bed.dataDir}.off`);
  return () => renameSync(`${bed.dataDir}.off`, bed.dataDir);
}

const ifUp = (bed: TestBed) => inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap']).then((r) => r.stdout);

backendScenarios('nftables', {
  state: ifUp,
  // an element or rule comment of an owner: "<network id>:<attachment id> ..."
  owned: /"comment": "[0-9a-f]{8}:[0-9a-f]{16}/,
  traffic: (ctx) => {
    it('CHECK passes, and after the table was flushed restores it from the records before checking', async () => {
      const { bed, pod } = ctx();
      expect((await bed.checkPod(pod)).code).toBe(0);
      await inNs(bed.node, ['nft', 'flush', 'table', 'inet', 'cni_portmap']);
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
      const healed = await bed.checkPod(pod);
      expect(healed.code).toBe(0);
      expect(healed.stderr).toMatch(/restoring \d+ attachment\(s\) from their records/);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('pod1');
    });

    it('CHECK still fails when the attachment has no record to restore from', async () => {
      const { bed, pod } = ctx();
      const saved = renameRecords(bed);
      try {
        await inNs(bed.node, ['nft', 'flush', 'table', 'inet', 'cni_portmap']);
        const broken = await bed.checkPod(pod);
        expect(broken.code).toBe(1);
        expect(broken.stderr).toMatch(/chain .* does not hold the expected rules|missing hostPort entry/);
      } finally {
        saved();
      }
      expect((await bed.checkPod(pod)).code).toBe(0);
    });
  },
  ownership: (getBed) => {
    it('an ADD after the table was deleted (nft flush ruleset, say) rebuilds it', async () => {
      const bed = getBed();
      const before = await bed.addPod([{ hostPort: 9700, containerPort: 80, protocol: 'tcp' }]);
      await inNs(bed.node, ['nft', 'delete', 'table', 'inet', 'cni_portmap']);
      const after = await bed.addPod([{ hostPort: 9701, containerPort: 80, protocol: 'tcp' }]);
      await bed.serve(after.netns, 'rebuilt', 80);
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9701)).tag).toBe('rebuilt');
      expect((await bed.checkPod(after)).code).toBe(0);
      // ... and brings back every live attachment from its record (issue #13)
      expect((await bed.checkPod(before)).code).toBe(0);
      await bed.delPod(after);
      await bed.delPod(before);
    });
  },
});

describe('nftables backend: snat, masqAll and conditions with real traffic', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('snat: false forwards without masquerading (client address kept, no localhost forwarding)', async () => {
    bed.writeConflist({ backend: 'nftables', snat: false });
    const pod = await bed.addPod([{ hostPort: 9600, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'nosnat', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9600))).toEqual({ tag: 'nosnat', peer: CLIENT_V4 });
    expect(await bed.request(bed.node, 'tcp', '127.0.0.1', 9600, { timeoutMs: 800 })).toBeUndefined();
    await bed.delPod(pod);
  });

  it('masqAll masquerades every DNATed connection to the pod', async () => {
    bed.writeConflist({ backend: 'nftables', masqAll: true });
    const pod = await bed.addPod([{ hostPort: 9601, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(pod.netns, 'masqall', 80);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9601))).toEqual({ tag: 'masqall', peer: '10.244.0.1' });
    await bed.delPod(pod);
  });

  it('conditionsV4 apply to this attachment only', async () => {
    bed.writeConflist({ backend: 'nftables', conditionsV4: ['ip', 'saddr', '!=', CLIENT_V4] });
    const cond = await bed.addPod([{ hostPort: 9602, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(cond.netns, 'cond', 80);
    bed.writeConflist({ backend: 'nftables' });
    const plain = await bed.addPod([{ hostPort: 9603, containerPort: 80, protocol: 'tcp' }]);
    await bed.serve(plain.netns, 'plain', 80);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 9602, { timeoutMs: 800 })).toBeUndefined();
    expect(reply(await bed.request(bed.node, 'tcp', NODE_V4, 9602)).tag).toBe('cond');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9602)).tag).toBe('cond');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9603)).tag).toBe('plain');
    bed.writeConflist({ backend: 'nftables', conditionsV4: ['ip', 'saddr', '!=', CLIENT_V4] });
    expect((await bed.checkPod(cond)).code).toBe(0);
    await bed.delPod(cond);
    expect(await ifUp(bed)).not.toContain(cond.id);
    bed.writeConflist({ backend: 'nftables' });
    await bed.delPod(plain);
  });
});
