/**
 * The self-contained executable (dist/portmap-sea, built by `npm run build`) installed as the portmap
 * plugin on a node without Node.js: every plugin call runs with a PATH that holds only the tools the
 * plugin needs (ip, nft, conntrack, iptables*), and `node` is not reachable through it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendScenarios } from './backend-scenarios.js';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V6, type Pod, ROOT, TestBed, inNs, reply } from './harness.js';

const SEA = join(ROOT, 'dist', 'portmap-sea');
const TOOLS = ['ip', 'nft', 'conntrack', 'iptables', 'iptables-restore', 'iptables-save', 'ip6tables', 'ip6tables-restore', 'ip6tables-save'];

/** A PATH directory with symlinks to just the tools the plugin runs. */
function toolsPath(): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'portmap-sea-path-'));
  for (const tool of TOOLS) {
    const found = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'].map((d) => join(d, tool)).find((p) => existsSync(p));
    if (found) symlinkSync(found, join(dir, tool));
  }
  return { dir, path: dir };
}

const table = (bed: TestBed) => inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap']).then((r) => r.stdout);

describe('self-contained executable (no node on PATH)', () => {
  let bed: TestBed;
  let pod: Pod;
  let tools: { dir: string; path: string };

  beforeAll(async () => {
    if (!existsSync(SEA)) {
      throw new Error(`${SEA} is missing: npm run build builds it (it needs the postject devDependency; see the build's warning)`);
    }
    tools = toolsPath();
    bed = await TestBed.create({ plugin: SEA, portmap: { backend: 'nftables' }, env: { PATH: tools.path } });
    pod = await bed.addPod([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 8053, containerPort: 53, protocol: 'udp' },
    ]);
    await bed.serve(pod.netns, 'sea-pod', 80);
    await bed.serve(pod.netns, 'sea-pod', 53);
  });
  afterAll(async () => {
    await bed?.destroy();
    if (tools) rmSync(tools.dir, { recursive: true, force: true });
  });

  it('is a native executable, and node is not reachable through the PATH the plugin gets', () => {
    expect(readFileSync(SEA).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(spawnSync('/bin/sh', ['-c', 'command -v node'], { env: { PATH: tools.path } }).status).not.toBe(0);
    expect(spawnSync('/bin/sh', ['-c', 'command -v nft'], { env: { PATH: tools.path } }).status).toBe(0);
  });

  it('answers VERSION', async () => {
    const res = await bed.plugin({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }, []);
    expect(res.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('forwards client -> node:hostPort over IPv4 and IPv6 (TCP and UDP)', async () => {
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'sea-pod', peer: CLIENT_V4 });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'sea-pod', peer: CLIENT_V6 });
    expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 8053)).tag).toBe('sea-pod');
  });

  it('forwards the node to 127.0.0.1:hostPort', async () => {
    expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080))).toEqual({ tag: 'sea-pod', peer: '10.244.0.1' });
  });

  it('CHECK passes; DEL leaves nothing of the pod; a second DEL succeeds', async () => {
    expect((await bed.checkPod(pod)).code).toBe(0);
    expect(await table(bed)).toContain(pod.id);
    expect((await bed.delPod(pod)).code).toBe(0);
    const after = await table(bed);
    expect(after).not.toContain(pod.id);
    expect(after).not.toContain(pod.ip4!);
    expect(after).not.toMatch(/"comment": "[0-9a-f]{8}:/);
    expect(await bed.request(bed.client, 'tcp', NODE_V4, 8080, { timeoutMs: 800 })).toBeUndefined();
    expect((await bed.delPod(pod)).code).toBe(0);
  });
});

// Every backend scenario again, with the self-contained executable and no node on PATH.
const scenarioTools = toolsPath();
afterAll(() => rmSync(scenarioTools.dir, { recursive: true, force: true }));
backendScenarios('nftables', {
  state: table,
  owned: /"comment": "[0-9a-f]{8}:[0-9a-f]{16}/,
  bed: { plugin: SEA, env: { PATH: scenarioTools.path } },
  label: 'self-contained executable, no node on PATH',
});
