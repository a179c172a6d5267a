/**
 * The standalone executable (dist/portmap-standalone, built by `npm run build` with Bun's single-file
 * compiler) installed as the portmap plugin on a node without Node.js: every plugin call runs with a
 * PATH that holds the node's programs but no JavaScript runtime. Besides the traffic, it checks what a
 * runtime other than Node could do differently: stdin and stdout on pipes and files, exit codes and
 * error objects, child processes (with and without stdin), the DEL answered at commit, files of the
 * working directory, the version it reports.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backendScenarios } from './backend-scenarios.js';
import { CLIENT_V4, CLIENT_V6, NODE_V4, NODE_V6, type Pod, ROOT, TestBed, inNs, reply, sh } from './harness.js';
import { type NodePath, STANDALONE, pathWithoutNode, requireStandalone } from './standalone.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; optionalDependencies: Record<string, string> };
const table = (bed: TestBed) => inNs(bed.node, ['nft', '-j', 'list', 'table', 'inet', 'cni_portmap']).then((r) => r.stdout);
const natSave = async (bed: TestBed): Promise<string> =>
  (await inNs(bed.node, ['iptables-save', '-t', 'nat'])).stdout + (await inNs(bed.node, ['ip6tables-save', '-t', 'nat'])).stdout;

/** What this file uses of bench/state.mjs (the bench's generator of existing attachments). */
interface BenchState {
  genContainerId(i: number): string;
  genPodIp(i: number): string;
  genMapping(i: number): { hostPort: number; containerPort: number; protocol: string };
  oursState(entries: Array<{ containerId: string; podIp: string; mapping: unknown }>): Promise<string>;
}

interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Execs the standalone executable in a namespace as a runtime does, and waits as Go's exec.Cmd does:
 * for the exit and for EOF on stdout and stderr (a child that kept them open would hold the caller).
 */
function exec(ns: string, env: Record<string, string>, stdin: string | Buffer | ((w: NodeJS.WritableStream) => void), opts: { cwd?: string; args?: string[] } = {}): Promise<Outcome> {
  const started = performance.now();
  const child = spawn('ip', ['netns', 'exec', ns, STANDALONE, ...(opts.args ?? [])], { env, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => undefined);
  if (typeof stdin === 'function') stdin(child.stdin);
  else child.stdin.end(stdin);
  return new Promise((resolve) => {
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), ms: performance.now() - started }),
    );
  });
}

describe('standalone executable (no node on PATH)', () => {
  let bed: TestBed;
  let pod: Pod;
  let nodePath: NodePath;
  let work: string;
  const cniEnv = (command: string, containerId: string, extra: Record<string, string> = {}) => ({
    PATH: nodePath.path, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: pod.netnsPath, CNI_IFNAME: 'eth0', CNI_PATH: bed.binDir, ...extra,
  });
  /**
   * A direct call's configuration: one mapping to an address of its own (SECOND, also on the pod's
   * eth0), so that these attachments share nothing with the pod's.
   */
  const SECOND = '10.244.0.250';
  const direct = (backend: string, hostPort: number) =>
    JSON.stringify({
      ...bed.portmapConfig({ backend }),
      runtimeConfig: { portMappings: [{ hostPort, containerPort: 80, protocol: 'tcp' }] },
      prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: pod.netnsPath }], ips: [{ address: `${SECOND}/24`, gateway: '10.244.0.1', interface: 0 }] },
    });

  beforeAll(async () => {
    requireStandalone();
    nodePath = pathWithoutNode();
    work = mkdtempSync(join(tmpdir(), 'portmap-standalone-'));
    bed = await TestBed.create({ plugin: STANDALONE, portmap: { backend: 'nftables' }, env: { PATH: nodePath.path } });
    pod = await bed.addPod([
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 8053, containerPort: 53, protocol: 'udp' },
    ]);
    await bed.serve(pod.netns, 'standalone-pod', 80);
    await bed.serve(pod.netns, 'standalone-pod', 53);
    await inNs(pod.netns, ['ip', 'addr', 'add', `${SECOND}/24`, 'dev', 'eth0']);
  });
  afterAll(async () => {
    await bed?.destroy();
    nodePath?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('is a native executable, and node is not reachable through the PATH the plugin gets', () => {
    expect(readFileSync(STANDALONE).subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    const which = (p: string) => spawnSync('/bin/sh', ['-c', `command -v ${p}`], { env: { PATH: nodePath.path } }).status;
    expect(which('node')).not.toBe(0);
    for (const tool of ['nft', 'iptables-restore', 'ip', 'conntrack', 'stdbuf']) expect(which(tool), tool).toBe(0);
  });

  it('--version names our version (package.json) and the embedded runtime (the pinned Bun)', () => {
    const bun = pkg.optionalDependencies['@oven/bun-linux-x64-baseline'];
    const r = spawnSync(STANDALONE, ['--version'], { env: { PATH: nodePath.path }, encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`portmap ${pkg.version}\nruntime: Bun ${bun}\nCNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n`);
  });

  it('answers VERSION', async () => {
    const res = await bed.plugin({ CNI_COMMAND: 'VERSION' }, { cniVersion: '1.0.0' }, []);
    expect(res.json).toEqual({ cniVersion: '1.0.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
  });

  it('reads stdin from a pipe written in pieces, from a file, and from a closed or empty stdin', async () => {
    const piecewise = await exec(bed.node, { PATH: nodePath.path, CNI_COMMAND: 'VERSION' }, (w) => {
      w.write('{"cniVers');
      setTimeout(() => w.end('ion":"0.4.0"}'), 300);
    });
    expect(piecewise.code).toBe(0);
    expect(JSON.parse(piecewise.stdout).cniVersion).toBe('0.4.0');
    // A configuration larger than a pipe's buffer, as a file and through a pipe.
    const big = JSON.stringify({
      ...bed.portmapConfig({ backend: 'nftables' }), padding: 'x'.repeat(300_000), runtimeConfig: { portMappings: pod.mappings }, prevResult: pod.result,
    });
    const file = join(work, 'big.json');
    writeFileSync(file, big);
    const fromFile = spawnSync('ip', ['netns', 'exec', bed.node, '/bin/sh', '-c', `exec "$0" < "$1"`, STANDALONE, file], {
      env: cniEnv('CHECK', pod.id), encoding: 'utf8',
    });
    expect(fromFile.status, fromFile.stdout + fromFile.stderr).toBe(0);
    const piped = await exec(bed.node, cniEnv('CHECK', pod.id), big);
    expect(piped.code, piped.stdout + piped.stderr).toBe(0);
    const closed = spawnSync('ip', ['netns', 'exec', bed.node, STANDALONE], { env: { PATH: nodePath.path, CNI_COMMAND: 'VERSION' }, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
    expect(closed.status).toBe(0);
    expect(JSON.parse(closed.stdout).cniVersion).toBe('1.1.0');
  });

  it('bad input: the CNI error object on stdout, the exit code, nothing changed', async () => {
    const before = await table(bed);
    const bad = await exec(bed.node, cniEnv('ADD', 'standalone-bad'), '{"cniVersion": "1.0.0", "name": "x", "type": "portmap", "runtimeConfig": {"portMappings": [{"hostPort": 70000, "containerPort": 80}]}}');
    expect(bad.code).toBe(1);
    const obj = JSON.parse(bad.stdout) as { code: number; msg: string };
    expect(obj.code).toBe(7);
    expect(obj.msg).toMatch(/hostPort/);
    const junk = await exec(bed.node, cniEnv('ADD', 'standalone-bad'), '{not json');
    expect(junk.code).toBe(1);
    expect((JSON.parse(junk.stdout) as { code: number }).code).toBe(6);
    const tooBig = await exec(bed.node, cniEnv('ADD', 'standalone-bad'), Buffer.alloc(17 * 1024 * 1024, 0x20));
    expect(tooBig.code).toBe(1);
    expect((JSON.parse(tooBig.stdout) as { msg: string }).msg).toMatch(/too large/);
    expect(await table(bed)).toBe(before);
  });

  it('ignores a .env, bunfig.toml, package.json and tsconfig.json in its working directory', async () => {
    const cwd = join(work, 'cwd');
    const logFile = join(work, 'dotenv.log');
    spawnSync('mkdir', ['-p', cwd]);
    writeFileSync(join(cwd, '.env'), `PORTMAP_LOG=debug\nPORTMAP_LOG_FILE=${logFile}\nCNI_COMMAND=VERSION\n`);
    writeFileSync(join(cwd, 'bunfig.toml'), 'preload = ["./evil.js"]\n');
    writeFileSync(join(cwd, 'evil.js'), 'console.log("evil"); process.exit(42);\n');
    writeFileSync(join(cwd, 'package.json'), '{"type": "module", "imports": {"#x": "./evil.js"}}\n');
    writeFileSync(join(cwd, 'tsconfig.json'), '{"compilerOptions": {"paths": {"*": ["./evil.js"]}}}\n');
    // The same call with those variables really set logs to the file (the flavour decision of iptables).
    const control = await exec(bed.node, cniEnv('DEL', 'standalone-dotenv', { PORTMAP_LOG: 'debug', PORTMAP_LOG_FILE: `${logFile}.control` }), direct('iptables', 9099));
    expect(control.code, control.stdout + control.stderr).toBe(0);
    expect(readFileSync(`${logFile}.control`, 'utf8')).toMatch(/debug: /);
    const res = await exec(bed.node, cniEnv('DEL', 'standalone-dotenv'), direct('iptables', 9099), { cwd });
    expect(res.code, res.stdout + res.stderr).toBe(0);
    expect(res.stdout + res.stderr).not.toContain('evil');
    expect(res.stdout).not.toContain('supportedVersions');
    expect(existsSync(logFile)).toBe(false);
  });

  it('operator CLI: all of a large report reaches a slow reader through a pipe', async () => {
    // 1,000 attachments (bench/state.mjs renders them with our own renderer) in a namespace of their
    // own: `portmap list --json` is then far larger than a pipe's buffer.
    const ns = `${bed.prefix}-list`;
    await sh(['ip', 'netns', 'add', ns]);
    try {
      const state = (await import(pathToFileURL(join(ROOT, 'bench', 'state.mjs')).href)) as BenchState;
      const entries = Array.from({ length: 1000 }, (_, i) => ({ containerId: state.genContainerId(i), podIp: state.genPodIp(i), mapping: state.genMapping(i) }));
      const doc = join(work, 'state.json');
      writeFileSync(doc, await state.oursState(entries));
      await inNs(ns, ['nft', '-j', '-f', doc]);
      for (const format of ['--json', '']) {
        const r = spawnSync('ip', ['netns', 'exec', ns, '/bin/sh', '-c', `"$0" list ${format} | { sleep 1; cat; }`, STANDALONE], {
          env: { PATH: nodePath.path }, encoding: 'utf8', maxBuffer: 64 << 20,
        });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stdout.length).toBeGreaterThan(70_000); // a pipe holds 65,536 bytes
        if (format) expect(JSON.stringify(JSON.parse(r.stdout)).match(/bench-existing-/g)?.length).toBe(1000);
        else expect(r.stdout).toContain('bench-existing-00999');
      }
    } finally {
      await sh(['ip', 'netns', 'del', ns], { ok: [1] });
    }
  });

  it('forwards client -> node:hostPort over IPv4 and IPv6 (TCP and UDP)', async () => {
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 8080))).toEqual({ tag: 'standalone-pod', peer: CLIENT_V4 });
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V6, 8080))).toEqual({ tag: 'standalone-pod', peer: CLIENT_V6 });
    expect(reply(await bed.request(bed.client, 'udp', NODE_V4, 8053)).tag).toBe('standalone-pod');
  });

  it('forwards the node to 127.0.0.1:hostPort', async () => {
    expect(reply(await bed.request(bed.node, 'tcp', '127.0.0.1', 8080))).toEqual({ tag: 'standalone-pod', peer: '10.244.0.1' });
  });

  it('a DEL is answered at commit: nft still running does not hold the caller, and the rules are gone', async () => {
    // stdbuf here records that it ran, then holds its stdout and stderr (pipes to the plugin) open for
    // 3 s after nft is done: a plugin that waited for nft's exit or EOF, or a child that inherited the
    // plugin's own stdout, would make the call last that long.
    const slow = pathWithoutNode();
    try {
      const marker = join(work, 'stdbuf-ran');
      unlinkSync(join(slow.path, 'stdbuf'));
      writeFileSync(join(slow.path, 'stdbuf'), `#!/bin/sh\necho "$*" >> ${marker}\n/usr/bin/stdbuf "$@"\nstatus=$?\nsleep 3\nexit $status\n`, { mode: 0o755 });
      const cid = 'standalone-commit';
      const add = await exec(bed.node, cniEnv('ADD', cid, { PATH: slow.path }), direct('nftables', 9101));
      expect(add.code, add.stdout + add.stderr).toBe(0);
      expect(await table(bed)).toContain('9101');
      const del = await exec(bed.node, cniEnv('DEL', cid, { PATH: slow.path }), direct('nftables', 9101));
      expect(del.code, del.stdout + del.stderr).toBe(0);
      expect(readFileSync(marker, 'utf8')).toMatch(/^-o0 nft .*--echo/m);
      expect(del.ms).toBeLessThan(2_000);
      expect(await table(bed)).not.toContain('9101');
    } finally {
      slow.remove();
    }
  });

  it('iptables: restores through stdin, and a DEL removes it all', async () => {
    const cid = 'standalone-ipt';
    const add = await exec(bed.node, cniEnv('ADD', cid), direct('iptables', 9102));
    expect(add.code, add.stdout + add.stderr).toBe(0);
    expect(await natSave(bed)).toContain('--dport 9102');
    expect(reply(await bed.request(bed.client, 'tcp', NODE_V4, 9102))).toEqual({ tag: 'standalone-pod', peer: CLIENT_V4 });
    const del = await exec(bed.node, cniEnv('DEL', cid), direct('iptables', 9102));
    expect(del.code, del.stdout + del.stderr).toBe(0);
    const after = await natSave(bed);
    expect(after).not.toContain('9102');
    expect(after).not.toMatch(/CNI-DN-/);
  });

  it('SIGTERM and SIGKILL while holding the lock: killed by the signal, and the next call gets the lock', async () => {
    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      const marker = join(work, `pause-${signal}`);
      writeFileSync(marker, '');
      const held = exec(bed.node, cniEnv('ADD', `standalone-${signal}`, { PORTMAP_TEST_PAUSE_AT: 'add:locked', PORTMAP_TEST_MARKER: marker }), direct('nftables', 9103));
      const deadline = Date.now() + 10_000;
      let line = '';
      while (!line && Date.now() < deadline) {
        line = readFileSync(marker, 'utf8').split('\n').find((l) => l.startsWith('add:locked ')) ?? '';
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(line, 'the plugin reached add:locked').not.toBe('');
      process.kill(Number(line.split(' ')[1]), signal);
      const out = await held;
      expect(out.signal).toBe(signal);
      const next = await exec(bed.node, cniEnv('DEL', `standalone-${signal}`), direct('nftables', 9103));
      expect(next.code, next.stdout + next.stderr).toBe(0);
      expect(next.ms).toBeLessThan(3_000);
    }
  });

  it('CHECK passes; DEL leaves nothing of the pod; a second DEL succeeds', async () => {
    const check = await bed.checkPod(pod);
    expect(check.code, check.stdout + check.stderr).toBe(0);
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

// Every backend scenario again, with the standalone executable and no node on PATH, for both backends.
const scenarioPath = pathWithoutNode();
afterAll(() => scenarioPath.remove());
backendScenarios('nftables', {
  state: table,
  owned: /"comment": "[0-9a-f]{8}:[0-9a-f]{16}/,
  bed: { plugin: STANDALONE, env: { PATH: scenarioPath.path } },
  label: 'standalone executable, no node on PATH',
});
backendScenarios('iptables', {
  state: natSave,
  owned: /dnat name|CNI-DN-/,
  bed: { plugin: STANDALONE, env: { PATH: scenarioPath.path } },
  label: 'standalone executable, no node on PATH',
});
