/**
 * Port ranges by real traffic, both backends, through the libcni runtime (issue #14): a 16,384-port
 * UDP range and a TCP range (first, middle and last port reach the pod, the ports just outside do not),
 * a range beside single mappings, a partial overlap with a stale owner, DEL leaving nothing, UDP
 * conntrack entries gone on ADD and DEL. nftables also: a table of the shape before ranges is migrated.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend } from './backend-scenarios.js';
import { CLIENT_V4, NODE_V4, NODE_V6, PLUGIN, type Pod, type PortMappingInput, TestBed, inNs, reply } from './harness.js';

const range = (first: number, last: number, protocol: 'tcp' | 'udp'): PortMappingInput[] =>
  Array.from({ length: last - first + 1 }, (_, i) => ({ hostPort: first + i, containerPort: first + i, protocol }));

async function state(bed: TestBed, backend: Backend): Promise<string> {
  if (backend === 'nftables') return (await inNs(bed.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'], { ok: [1] })).stdout;
  const v4 = (await inNs(bed.node, ['iptables-save', '-t', 'nat'])).stdout;
  const v6 = (await inNs(bed.node, ['ip6tables-save', '-t', 'nat'])).stdout;
  return v4 + v6;
}

/** UDP conntrack entries to a host port in the node namespace. */
async function udpEntries(bed: TestBed, port: number): Promise<string> {
  const res = await inNs(bed.node, ['conntrack', '-L', '-p', 'udp', '--orig-port-dst', String(port)], { ok: [1] });
  return res.stdout.trim();
}

/** Serves these ports of a pod, each with its own echo server. */
async function serve(bed: TestBed, pod: Pod, tag: string, ports: readonly number[]): Promise<void> {
  for (const p of ports) await bed.serve(pod.netns, tag, p);
}

const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
  const t = performance.now();
  const out = await fn();
  process.stderr.write(`# ${what}: ${(performance.now() - t).toFixed(0)} ms (libcni runtime, whole conflist)\n`);
  return out;
};

function rangeScenarios(backend: Backend): void {
  describe(`${backend} backend: port ranges`, () => {
    let bed: TestBed;
    beforeAll(async () => {
      bed = await TestBed.create({ portmap: { backend } });
    });
    afterAll(() => bed?.destroy());

    it('a 16,384-port UDP range: first, middle and last port reach the pod, the ports just outside do not; DEL leaves nothing', async () => {
      const pod = await timed(`${backend} ADD 16,384 UDP`, () => bed.addPod(range(40000, 56383, 'udp')));
      await serve(bed, pod, 'udp-range', [39999, 40000, 48192, 56383, 56384]);
      for (const port of [40000, 48192, 56383]) {
        expect(reply(await bed.request(bed.client, 'udp', NODE_V4, port))).toEqual({ tag: 'udp-range', peer: CLIENT_V4 });
        expect(reply(await bed.request(bed.client, 'udp', NODE_V6, port)).tag).toBe('udp-range');
      }
      for (const port of [39999, 56384]) expect(await bed.request(bed.client, 'udp', NODE_V4, port, { timeoutMs: 600 })).toBeUndefined();
      // Hairpin and node-local through a range as well.
      expect(reply(await bed.request(pod.netns, 'udp', NODE_V4, 48192)).tag).toBe('udp-range');
      expect(reply(await bed.request(bed.node, 'udp', '127.0.0.1', 48192)).tag).toBe('udp-range');
      expect((await bed.checkPod(pod)).code).toBe(0);
      expect(await state(bed, backend)).toContain(pod.id);
      if (backend === 'nftables') {
        // The range element counted each new IPv4 connection once: 3 from the client, hairpin, localhost.
        const map = JSON.parse((await inNs(bed.node, ['nft', '-j', 'list', 'map', 'inet', 'cni_portmap', 'hostports4_addr'])).stdout) as { nftables: Array<{ map?: { elem?: Array<[{ elem: { val: unknown; counter?: { packets: number } } }, string]> } }> };
        const elems = map.nftables.flatMap((o) => o.map?.elem ?? []);
        const el = elems.find(([k]) => JSON.stringify(k.elem.val) === JSON.stringify({ concat: ['udp', { range: [40000, 56383] }] }));
        expect(el?.[0].elem.counter?.packets).toBe(5);
        const list = JSON.parse((await inNs(bed.node, [PLUGIN, 'list', '--json'])).stdout) as { mappings: Array<Record<string, unknown>> };
        expect(list.mappings).toContainEqual(expect.objectContaining({ protocol: 'udp', hostPort: 40000, lastHostPort: 56383, containerPort: 40000, connections: 5, containerID: pod.id }));
      }
      expect((await timed(`${backend} DEL 16,384 UDP`, () => bed.delPod(pod))).code).toBe(0);
      expect(await state(bed, backend)).not.toContain(pod.id);
      expect(await bed.request(bed.client, 'udp', NODE_V4, 48192, { timeoutMs: 600 })).toBeUndefined();
    });

    it('a TCP range beside single mappings of the same pod', async () => {
      const pod = await bed.addPod([
        ...range(20000, 20099, 'tcp'),
        { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
        { hostPort: 20100, containerPort: 81, protocol: 'tcp' },
      ]);
      await serve(bed, pod, 'tcp-range', [19999, 20000, 20050, 20099, 80, 81]);
      for (const port of [20000, 20050, 20099]) {
        expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, port))).toEqual({ tag: 'tcp-range', peer: CLIENT_V4 });
        expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, port)).tag).toBe('tcp-range');
      }
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 19999, { timeoutMs: 600 })).toBeUndefined();
      // 20100 is a single mapping to port 81, next to the range: it keeps its own container port.
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 20100)).tag).toBe('tcp-range');
      expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080)).tag).toBe('tcp-range');
      expect((await bed.checkPod(pod)).code).toBe(0);
      await bed.delPod(pod);
      expect(await state(bed, backend)).not.toContain(pod.id);
      expect(await bed.request(bed.client, 'tcp', NODE_V4, 20050, { timeoutMs: 600 })).toBeUndefined();
    });

    it("a range that overlaps a stale owner's range in part takes over only the shared ports", async () => {
      const stale = await bed.addPod(range(30000, 30099, 'udp'));
      await serve(bed, stale, 'stale', [30000, 30049, 30050, 30099]);
      const fresh = await bed.addPod(range(30050, 30149, 'udp'));
      await serve(bed, fresh, 'fresh', [30050, 30099, 30100, 30149]);
      for (const port of [30050, 30099, 30100, 30149]) expect(reply(await bed.request(bed.client, 'udp', NODE_V4, port)).tag).toBe('fresh');
      for (const port of [30000, 30049]) expect(reply(await bed.request(bed.client, 'udp', NODE_V4, port)).tag).toBe('stale');
      expect((await bed.checkPod(fresh)).code).toBe(0);
      // The stale owner's DEL removes what it still has and leaves the fresh one's ports alone.
      expect((await bed.delPod(stale)).code).toBe(0);
      for (const port of [30050, 30099, 30149]) expect(reply(await bed.request(bed.client, 'udp', NODE_V4, port)).tag).toBe('fresh');
      expect(await bed.request(bed.client, 'udp', NODE_V4, 30000, { timeoutMs: 600 })).toBeUndefined();
      const left = await state(bed, backend);
      expect(left).not.toContain(stale.id);
      expect(left).toContain(fresh.id);
      await bed.delPod(fresh);
      expect(await state(bed, backend)).not.toContain(fresh.id);
    });

    it('UDP conntrack entries of a range are gone after ADD and after DEL', async () => {
      // A client that sent before the pod existed has an entry without DNAT; it must not stick.
      expect(await bed.request(bed.client, 'udp', NODE_V4, 45001, { timeoutMs: 300, sourcePort: 54001 })).toBeUndefined();
      expect(await bed.request(bed.client, 'udp', NODE_V4, 47002, { timeoutMs: 300, sourcePort: 54002 })).toBeUndefined();
      expect(await udpEntries(bed, 45001)).toContain('dport=45001');
      const pod = await bed.addPod(range(45000, 47999, 'udp'));
      expect(await udpEntries(bed, 45001)).toBe('');
      expect(await udpEntries(bed, 47002)).toBe('');
      await serve(bed, pod, 'ct', [45001]);
      expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 45001, { sourcePort: 54001 })).tag).toBe('ct');
      expect(await udpEntries(bed, 45001)).toContain('dport=45001');
      await bed.delPod(pod);
      expect(await udpEntries(bed, 45001)).toBe('');
    });
  });
}

rangeScenarios('nftables');
rangeScenarios('iptables');

describe('nftables backend: a table made before ranges (plain address maps) is migrated', () => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'nftables' } });
  });
  afterAll(() => bed?.destroy());

  it('the next ADD replaces the old maps in one transaction and carries every element over', async () => {
    const old = await bed.addPod([{ hostPort: 9800, containerPort: 80, protocol: 'tcp' }, { hostPort: 9801, containerPort: 53, protocol: 'udp' }]);
    await bed.serve(old.netns, 'old', 80);
    // Rewrite the table into the shape of the plugin before ranges: hash maps, one DNAT rule per map.
    const listed = JSON.parse((await inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap'])).stdout) as { nftables: Array<Record<string, Record<string, unknown>>> };
    const cmds: unknown[] = [];
    for (const obj of listed.nftables) {
      const [kind, body] = Object.entries(obj)[0]!;
      if (kind === 'metainfo') continue;
      const b = { ...body };
      delete b.handle;
      if (kind === 'map' || kind === 'set') {
        if (String(b.name).includes('ports') && String(b.name).endsWith('_addr')) {
          delete b.flags;
          delete b.stmt;
          b.elem = (b.elem as unknown[] | undefined)?.map((e) => {
            const [k, v] = e as [{ elem: Record<string, unknown> }, unknown];
            const { counter: _c, ...rest } = k.elem;
            return [{ elem: rest }, v];
          });
        }
        if (b.name === 'ready') b.elem = [[1, 12345]];
        if (!b.elem) delete b.elem;
      }
      if (kind === 'rule') {
        const expr = b.expr as Array<Record<string, unknown>>;
        const text = JSON.stringify(expr);
        if (b.chain === 'hostports' && text.includes('"!="')) continue; // the new address-only rule
        if (b.chain === 'hostports') b.expr = expr.filter((x) => !JSON.stringify(x).includes('l4proto"}},"right":{"set"'));
      }
      cmds.push({ add: { [kind]: b } });
    }
    await inNs(bed.node, ['nft', 'delete', 'table', 'inet', 'cni_portmap']);
    const file = join(bed.dir, 'old-table.json');
    writeFileSync(file, JSON.stringify({ nftables: cmds }));
    await inNs(bed.node, ['nft', '-j', '-f', file]);
    const before = await bed.ruleset();
    expect(before).not.toMatch(/map hostports4_addr \{[^}]*flags interval/);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9800)).tag).toBe('old');

    const fresh = await bed.addPod(range(33000, 33999, 'udp'));
    await bed.serve(fresh.netns, 'fresh', 33500);
    const after = await bed.ruleset();
    expect(after).toMatch(/map hostports4_addr \{[^}]*flags interval/);
    expect(after).toContain(old.id);
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9800)).tag).toBe('old');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 9800)).tag).toBe('old');
    expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 33500)).tag).toBe('fresh');
    expect((await bed.checkPod(old)).code).toBe(0);
    // The old pod's DEL still takes its fast path (its elements and witness were carried over).
    expect((await bed.delPod(old)).code).toBe(0);
    expect(await bed.ruleset()).not.toContain(old.id);
    await bed.delPod(fresh);
  });
});
