#!/usr/bin/env node
// Side-by-side benchmark: this plugin (dist/portmap-standalone, the self-contained executable, and dist/portmap, the bundle;
// both with their default nftables backend) against the reference Go plugin (/usr/lib/cni/portmap, Debian, iptables).
// Run as root: `npm run bench` (builds first). See bench/README.md for what is measured and how.
//
// Everything happens in network namespaces this script creates (prefix pmb<hex>) and deletes at the end,
// also on Ctrl-C; traffic only goes between those namespaces. The root namespace's ruleset is not touched.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  GEN_PORT_BASE, genContainerId, genMapping, genPodIp, normalizeIptablesSave, oursState, pluginConfig, referenceState, tempFile,
} from './state.mjs';
import { rangesBench } from './ranges.mjs';
import { benchRestore, formatRestore } from './restore.mjs';
import { inNs, median, sh } from './proc.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
const OURS = join(ROOT, 'dist', 'portmap');
const OURS_STANDALONE = join(ROOT, JSON.parse(readFileSync(join(ROOT, 'build', 'executable.json'), 'utf8')).selfContained);
const REFERENCE = process.env.BENCH_REFERENCE ?? '/usr/lib/cni/portmap';

const int = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);
const ITERATIONS = int('BENCH_ITERATIONS', 15);
const WARMUP = int('BENCH_WARMUP', 2);
const SIZES = (process.env.BENCH_SIZES ?? '0,200,1000').split(',').map(Number);
const CONN_SIZES = [1, int('BENCH_CONN_MAPPINGS', 1000)];
const CONN_SECONDS = int('BENCH_CONN_SECONDS', 2);
const CONN_ROUNDS = int('BENCH_CONN_ROUNDS', 3);
const CONN_PARALLEL = int('BENCH_CONN_PARALLEL', 16);

// A real node does not export it, and it adds ~65 ms to every Node start on these machines.
delete process.env.NODE_EXTRA_CA_CERTS;

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const NODE_V4 = '192.0.2.1';
const CLIENT_V4 = '192.0.2.2';
const POD_IP = '10.244.0.2';
const TIMED_MAPPING = { hostPort: 8080, containerPort: 80, protocol: 'tcp' };
const CONN_MAPPING = { hostPort: 9080, containerPort: 80, protocol: 'tcp' };

// ---- process helpers -------------------------------------------------------------------------------

const has = (program) => spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;

const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const fmt = (ms) => (ms === undefined ? 'n/a' : `${ms.toFixed(1)} ms`);
const ratio = (a, b) => (a === undefined || b === undefined ? 'n/a' : `${(a / b).toFixed(2)}x`);
const log = (msg) => process.stderr.write(`# ${msg}\n`);

// ---- namespaces, cleaned up whatever happens ---------------------------------------------------------

const prefix = `pmb${randomBytes(3).toString('hex')}`;
const namespaces = [];
const children = new Set();
let cleaned = false;
function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const c of children) {
    try {
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const ns of namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: removing namespaces ${prefix}-*`);
    cleanup();
    process.exit(130);
  });
}

function newNs(name) {
  sh('ip', ['netns', 'add', name]);
  namespaces.push(name);
  inNs(name, ['ip', 'link', 'set', 'lo', 'up']);
  return name;
}

/** A long-lived child; resolves once it printed its first line (when waitLine). */
function startChild(args, waitLine = false) {
  const child = spawn(args[0], args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  child.on('exit', () => children.delete(child));
  if (!waitLine) return Promise.resolve(child);
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: child.stdout });
    rl.once('line', () => resolve(child));
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}`)));
  });
}

/**
 * One node: a node namespace (bridge cni0 10.244.0.1/16, uplink 192.0.2.1/24), one pod on the bridge
 * (10.244.0.2/16, a veth like the bridge plugin makes) and a client on the uplink (192.0.2.2/24).
 * A driver process inside the node namespace execs the plugins.
 */
class NodeBed {
  constructor(tag, kind) {
    this.kind = kind; // 'nft' | 'ipt'
    this.node = newNs(`${prefix}-${tag}`);
    this.pod = newNs(`${prefix}-${tag}-pod`);
    this.client = newNs(`${prefix}-${tag}-cli`);
    this.podPath = `/var/run/netns/${this.pod}`;
    const n = this.node;
    inNs(n, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    sh('ip', ['-n', n, 'link', 'add', 'cni0', 'type', 'bridge']);
    sh('ip', ['-n', n, 'addr', 'add', '10.244.0.1/16', 'dev', 'cni0']);
    sh('ip', ['-n', n, 'link', 'set', 'cni0', 'up']);
    sh('ip', ['link', 'add', 'veth0', 'netns', n, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', this.pod]);
    sh('ip', ['-n', n, 'link', 'set', 'veth0', 'master', 'cni0', 'up']);
    sh('ip', ['-n', this.pod, 'addr', 'add', `${POD_IP}/16`, 'dev', 'eth0']);
    sh('ip', ['-n', this.pod, 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', this.pod, 'route', 'add', 'default', 'via', '10.244.0.1']);
    sh('ip', ['link', 'add', 'up0', 'netns', n, 'type', 'veth', 'peer', 'name', 'up0', 'netns', this.client]);
    sh('ip', ['-n', n, 'addr', 'add', `${NODE_V4}/24`, 'dev', 'up0']);
    sh('ip', ['-n', this.client, 'addr', 'add', `${CLIENT_V4}/24`, 'dev', 'up0']);
    sh('ip', ['-n', n, 'link', 'set', 'up0', 'up']);
    sh('ip', ['-n', this.client, 'link', 'set', 'up0', 'up']);
    inNs(this.client, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
    this.pending = new Map();
    this.seq = 0;
  }

  async startDriver() {
    this.driver = await startChild(['ip', 'netns', 'exec', this.node, process.execPath, join(HERE, 'driver.mjs')]);
    createInterface({ input: this.driver.stdout }).on('line', (line) => {
      const res = JSON.parse(line);
      this.pending.get(res.id)?.(res);
      this.pending.delete(res.id);
    });
  }

  /** Execs a plugin in the node namespace as a runtime does; resolves with {ms, code, stdout, stderr}. */
  call(bin, command, containerId, config, { rss = false } = {}) {
    const id = ++this.seq;
    const env = {
      PATH, CNI_COMMAND: command, CNI_CONTAINERID: containerId, CNI_NETNS: this.podPath, CNI_IFNAME: 'eth0', CNI_ARGS: '', CNI_PATH: '/opt/cni/bin',
    };
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.driver.stdin.write(`${JSON.stringify({ id, bin, env, input: JSON.stringify(config), rss })}\n`);
    });
  }

  /** Replaces the plugin's state in this node with the given existing attachments (see state.mjs). */
  async reset(entries) {
    if (this.kind === 'nft') {
      const t = tempFile('state.json', await oursState(entries));
      try {
        inNs(this.node, ['nft', '-j', '-f', t.file]);
      } finally {
        t.remove();
      }
    } else {
      const t = tempFile('nat.rules', referenceState(entries));
      try {
        inNs(this.node, ['iptables-restore', t.file]);
      } finally {
        t.remove();
      }
    }
  }

  /** Text that identifies the plugin's state (for comparing real and generated state). */
  state() {
    return this.kind === 'nft'
      ? inNs(this.node, ['nft', 'list', 'table', 'inet', 'cni_portmap'])
      : normalizeIptablesSave(inNs(this.node, ['iptables-save', '-t', 'nat']));
  }
}

const entriesFor = (n) => Array.from({ length: n }, (_, i) => ({ containerId: genContainerId(i), podIp: genPodIp(i), mapping: genMapping(i) }));

async function mustCall(bed, bin, command, cid, config, opts) {
  const res = await bed.call(bin, command, cid, config, opts);
  if (res.code !== 0) throw new Error(`${bin} ${command} ${cid} failed (exit ${res.code}): ${res.stdout.trim()} ${res.stderr.trim()}`.slice(0, 3000));
  return res;
}

// ---- machine --------------------------------------------------------------------------------------

function machine() {
  const first = (cmd, args) => {
    try {
      return sh(cmd, args).split('\n')[0].trim();
    } catch {
      return 'n/a';
    }
  };
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    kernel: release(),
    node: process.version,
    nft: first('nft', ['--version']),
    iptables: first('iptables', ['--version']),
    standalone: existsSync(OURS_STANDALONE) ? sh(OURS_STANDALONE, ['--version']).split('\n').slice(0, 2).join(', ') : 'not built',
    reference: `${REFERENCE} (${first('dpkg-query', ['-W', '-f=${Package} ${Version}', 'containernetworking-plugins'])})`,
  };
}

// ---- 1. startup: VERSION vs node -e 0 --------------------------------------------------------------

function startup(withStandalone) {
  const cmds = [['node -e 0', 'node -e 0'], ['ours', OURS], ...(withStandalone ? [['ours-standalone', OURS_STANDALONE]] : []), ['reference', REFERENCE]];
  const env = { ...process.env, CNI_COMMAND: 'VERSION' };
  const out = {};
  if (has('hyperfine')) {
    const dir = mkdtempSync(join(tmpdir(), 'portmap-bench-hf-'));
    try {
      const json = join(dir, 'hf.json');
      const args = ['-N', '--warmup', '10', '--runs', String(int('BENCH_STARTUP_RUNS', 100)), '--export-json', json, '--style', 'none'];
      for (const [name, cmd] of cmds) args.push('-n', name, cmd);
      const res = spawnSync('hyperfine', args, { env, encoding: 'utf8' });
      if (res.status !== 0) throw new Error(`hyperfine failed: ${res.stderr}`);
      for (const r of JSON.parse(readFileSync(json, 'utf8')).results) out[r.command] = { median: r.median * 1000, mean: r.mean * 1000, sd: r.stddev * 1000 };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    out.tool = 'hyperfine -N';
  } else {
    for (const [name, cmd] of cmds) {
      const [bin, ...args] = cmd.split(' ');
      const times = [];
      for (let i = 0; i < 60; i++) {
        const t = process.hrtime.bigint();
        spawnSync(bin, args, { env, stdio: ['ignore', 'ignore', 'ignore'] });
        if (i >= 10) times.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      out[name] = { median: median(times) };
    }
    out.tool = 'spawnSync loop (hyperfine not installed)';
  }
  return out;
}

// ---- main -----------------------------------------------------------------------------------------

async function main() {
  if (process.getuid?.() !== 0) throw new Error('run as root (network namespaces)');
  for (const f of [OURS, REFERENCE]) if (!existsSync(f)) throw new Error(`${f} not found (npm run build; apt-get install containernetworking-plugins)`);
  const withStandalone = existsSync(OURS_STANDALONE);
  const m = machine();
  console.log('## portmap benchmark: ours vs reference\n');
  for (const [k, v] of Object.entries(m)) console.log(`- ${k}: ${v}`);
  console.log(`- ours: ${OURS} (no "backend" in the configuration: nftables, the default)${withStandalone ? `, ${OURS_STANDALONE} (self-contained)` : ' (dist/portmap-standalone not built)'}`);
  console.log(`- method: median of ${ITERATIONS} ADD+DEL pairs per size (after ${WARMUP} warm-up pairs), plugins alternating, each node its own namespace`);

  log('startup (VERSION)');
  const st = startup(withStandalone);

  log(`namespaces ${prefix}-*`);
  const oursBed = new NodeBed('ours', 'nft');
  const refBed = new NodeBed('ref', 'ipt');
  await Promise.all([oursBed.startDriver(), refBed.startDriver()]);

  const plugins = [
    { name: 'ours', bin: OURS, bed: oursBed },
    ...(withStandalone ? [{ name: 'ours-standalone', bin: OURS_STANDALONE, bed: oursBed }] : []),
    { name: 'reference', bin: REFERENCE, bed: refBed },
  ];
  const cfg = (p, mapping, podIp = POD_IP) => pluginConfig({ backend: p.backend, mappings: [mapping], podIp, netnsPath: p.bed.podPath });

  // Generated state == what the real plugin writes (fresh namespaces: shared chains/tables included).
  log('checking the state generators against the real plugins');
  const verify = { containerId: 'bench-verify', podIp: '10.244.9.9', mapping: { hostPort: 20999, containerPort: 80, protocol: 'tcp' } };
  for (const p of [plugins[0], plugins.at(-1)]) {
    await mustCall(p.bed, p.bin, 'ADD', verify.containerId, cfg(p, verify.mapping, verify.podIp));
    const real = p.bed.state();
    await p.bed.reset([verify]);
    const generated = p.bed.state();
    if (real !== generated) throw new Error(`generated ${p.name} state differs from the plugin's own:\n--- plugin\n${real}\n--- generated\n${generated}`);
    await mustCall(p.bed, p.bin, 'DEL', verify.containerId, cfg(p, verify.mapping, verify.podIp));
  }
  console.log('- state generators: checked (one real ADD lists identically to the generated state, both plugins)');

  // ---- 2. ADD/DEL wall time by existing mappings ----
  const timing = {};
  let rss = {};
  for (const size of SIZES) {
    log(`ADD/DEL with ${size} existing mappings`);
    const entries = entriesFor(size);
    await oursBed.reset(entries);
    await refBed.reset(entries);
    const t = Object.fromEntries(plugins.map((p) => [p.name, { add: [], del: [] }]));
    for (let i = -WARMUP; i < ITERATIONS; i++) {
      const k = ((i % plugins.length) + plugins.length) % plugins.length;
      const order = [...plugins.slice(k), ...plugins.slice(0, k)];
      for (const p of order) {
        const cid = `bench-${p.name}-${size}-${i + WARMUP}`;
        const add = await mustCall(p.bed, p.bin, 'ADD', cid, cfg(p, TIMED_MAPPING));
        const del = await mustCall(p.bed, p.bin, 'DEL', cid, cfg(p, TIMED_MAPPING));
        if (i >= 0) {
          t[p.name].add.push(add.ms);
          t[p.name].del.push(del.ms);
        }
      }
    }
    timing[size] = t;
    if (size === Math.max(...SIZES)) {
      // Peak memory of an ADD (GNU time %M), at the largest state.
      rss = {};
      for (const p of plugins) {
        const runs = [];
        for (let i = 0; i < 3; i++) {
          const cid = `bench-rss-${p.name}-${i}`;
          runs.push((await mustCall(p.bed, p.bin, 'ADD', cid, cfg(p, TIMED_MAPPING), { rss: true })).maxRssKiB);
          await mustCall(p.bed, p.bin, 'DEL', cid, cfg(p, TIMED_MAPPING));
        }
        rss[p.name] = Math.max(...runs);
      }
    }
  }

  // ---- 3. new TCP connections per second through a hostPort ----
  log('connection rate');
  const beds = [{ name: 'ours', bin: OURS, bed: oursBed }, { name: 'reference', bin: REFERENCE, bed: refBed }];
  const sample = Math.min(777, CONN_SIZES[1] - 2);
  for (const b of beds) {
    await startChild(['ip', 'netns', 'exec', b.bed.pod, process.execPath, join(HERE, 'connrate.mjs'), 'server', '80'], true);
    // The pod also answers as generated pod #sample, to prove a request goes through a generated mapping.
    sh('ip', ['-n', b.bed.pod, 'addr', 'add', `${genPodIp(sample)}/16`, 'dev', 'eth0']);
  }
  const client = (b, port, seconds, parallel) =>
    JSON.parse(inNs(b.bed.client, [process.execPath, join(HERE, 'connrate.mjs'), 'client', NODE_V4, String(port), String(seconds), String(parallel)]));
  const conn = Object.fromEntries(beds.map((b) => [b.name, Object.fromEntries(CONN_SIZES.map((s) => [s, []]))]));
  let sampleChecked = false;
  for (let round = 0; round < CONN_ROUNDS; round++) {
    for (const size of CONN_SIZES) {
      for (const b of round % 2 ? [...beds].reverse() : beds) {
        await b.bed.reset(entriesFor(size - 1));
        await mustCall(b.bed, b.bin, 'ADD', 'bench-conn', cfg(b, CONN_MAPPING));
        const probe = client(b, CONN_MAPPING.hostPort, 0.2, 1);
        if (probe.conns === 0) throw new Error(`${b.name}: no connection through ${NODE_V4}:${CONN_MAPPING.hostPort}`);
        if (size > 1 && !sampleChecked) {
          const gen = client(b, GEN_PORT_BASE + sample, 0.2, 1);
          if (gen.conns === 0) throw new Error(`${b.name}: no connection through generated mapping ${NODE_V4}:${GEN_PORT_BASE + sample}`);
        }
        inNs(b.bed.node, ['conntrack', '-F'], { ok: [0, 1] });
        const r = client(b, CONN_MAPPING.hostPort, CONN_SECONDS, CONN_PARALLEL);
        if (r.errors > 0) log(`${b.name} @${size}: ${r.errors} failed connections`);
        conn[b.name][size].push(r.rate);
        await mustCall(b.bed, b.bin, 'DEL', 'bench-conn', cfg(b, CONN_MAPPING));
      }
      if (size > 1) sampleChecked = true;
    }
  }
  console.log(`- generated mappings carry traffic: checked (client -> ${NODE_V4}:${GEN_PORT_BASE + sample} reached the pod, both plugins)`);

  // ---- report ----
  console.log('\n### ADD / DEL wall time (median; p90 in brackets; ratio = ours / reference)\n');
  const ourNames = ['ours-standalone', 'ours'].filter((n) => plugins.some((p) => p.name === n));
  const hdr = ['existing mappings', 'reference ADD', ...ourNames.flatMap((n) => [`${n} ADD`, 'ratio']), 'reference DEL', ...ourNames.flatMap((n) => [`${n} DEL`, 'ratio'])];
  console.log(`| ${hdr.join(' | ')} |`);
  console.log(`|${hdr.map(() => '---').join('|')}|`);
  const med = (size, name, verb) => median(timing[size][name][verb]);
  const cell = (size, name, verb) => `${fmt(med(size, name, verb))} (${fmt(quantile(timing[size][name][verb], 0.9))})`;
  for (const size of SIZES) {
    const row = [size];
    for (const verb of ['add', 'del']) {
      row.push(cell(size, 'reference', verb));
      for (const n of ourNames) row.push(cell(size, n, verb), ratio(med(size, n, verb), med(size, 'reference', verb)));
    }
    console.log(`| ${row.join(' | ')} |`);
  }

  console.log(`\n### New TCP connections per second through a hostPort (median of ${CONN_ROUNDS} runs of ${CONN_SECONDS} s, ${CONN_PARALLEL} parallel loops)\n`);
  console.log('| mappings installed | ours | reference |');
  console.log('|---|---|---|');
  const rate = (name, size) => median(conn[name][size]);
  for (const size of CONN_SIZES) console.log(`| ${size} | ${Math.round(rate('ours', size))} conn/s | ${Math.round(rate('reference', size))} conn/s |`);

  console.log(`\n### Startup: VERSION (${st.tool}, median)\n`);
  console.log('| command | median |');
  console.log('|---|---|');
  for (const k of ['node -e 0', 'ours', 'ours-standalone', 'reference']) if (st[k]) console.log(`| ${k === 'node -e 0' ? '`node -e 0`' : k} | ${fmt(st[k].median)} |`);
  console.log(`\n### Peak RSS of an ADD (GNU time %M, ${Math.max(...SIZES)} existing mappings, max of 3)\n`);
  for (const p of plugins) console.log(`- ${p.name}: ${(rss[p.name] / 1024).toFixed(1)} MiB`);

  const rangeResults = process.env.BENCH_RANGES === '0' ? [] : await rangesBench({
    plugins, mustCall, pluginConfig, podIp: POD_IP, median, fmt, ratio, log, startChild, inNs, connRounds: CONN_ROUNDS,
    connScript: join(HERE, 'connrate.mjs'), connClient: (bed, port) => client({ bed }, port, CONN_SECONDS, CONN_PARALLEL),
  });
  // ---- restore of 1,000 attachments after a wipe (issue #13): bench/restore.mjs ----
  log('restore (bench/restore.mjs)');
  const restoreBench = formatRestore(await benchRestore(withStandalone ? OURS_STANDALONE : OURS, log));
  console.log(restoreBench.text);

  // ---- targets ----
  console.log('\n### Targets\n');
  const results = [];
  const target = (label, ok, detail) => {
    results.push(ok);
    console.log(`- ${ok ? 'PASS' : 'FAIL'}  ${label}: ${detail}`);
  };
  const lo = Math.min(...SIZES);
  const hi = Math.max(...SIZES);
  const r = (a, b) => a / b;
  const addRatio = (n, size) => r(med(size, n, 'add'), med(size, 'reference', 'add'));
  const delRatio = (n, size) => r(med(size, n, 'del'), med(size, 'reference', 'del'));
  const flat = (n) => {
    for (const verb of ['add', 'del']) {
      target(`${n} ${verb.toUpperCase()} at ${hi} <= 1.25x its own at ${lo}`, r(med(hi, n, verb), med(lo, n, verb)) <= 1.25,
        `${fmt(med(hi, n, verb))} vs ${fmt(med(lo, n, verb))} = ${ratio(med(hi, n, verb), med(lo, n, verb))}`);
    }
  };
  const peak = (n) => `${(rss[n] / 1024).toFixed(1)} MiB`;
  const versionGap = (n) => st[n].median - st.reference.median;
  const signed = (ms) => `${ms >= 0 ? '+' : ''}${ms.toFixed(1)} ms`;
  // Issue #15's targets, for the executable README installs into /opt/cni/bin.
  if (withStandalone) {
    const n = 'ours-standalone';
    console.log(`\n${n} (dist/portmap-standalone, the self-contained executable README installs):\n`);
    target(`ADD at ${lo} <= 0.6x reference (stretch 0.5x: ${addRatio(n, lo) <= 0.5 ? 'met' : 'not met'})`, addRatio(n, lo) <= 0.6, ratio(med(lo, n, 'add'), med(lo, 'reference', 'add')));
    target(`ADD at ${hi} <= 0.2x reference`, addRatio(n, hi) <= 0.2, ratio(med(hi, n, 'add'), med(hi, 'reference', 'add')));
    for (const size of SIZES) target(`DEL at ${size} <= 0.25x reference`, delRatio(n, size) <= 0.25, ratio(med(size, n, 'del'), med(size, 'reference', 'del')));
    flat(n);
    target('VERSION within 5 ms of the reference\'s', versionGap(n) <= 5, `${fmt(st[n].median)} vs ${fmt(st.reference.median)} = ${signed(versionGap(n))}`);
    target('peak RSS of an ADD <= 24 MiB', rss[n] <= 24 * 1024, peak(n));
  }
  // The bundle, for nodes that have Node.js: the targets it had before #15.
  {
    const n = 'ours';
    console.log(`\n${n} (dist/portmap, the bundle; needs node >= 20 on the node):\n`);
    target(`ADD at ${lo} <= 0.8x reference`, addRatio(n, lo) <= 0.8, ratio(med(lo, n, 'add'), med(lo, 'reference', 'add')));
    target(`ADD at ${hi} <= 0.5x reference`, addRatio(n, hi) <= 0.5, ratio(med(hi, n, 'add'), med(hi, 'reference', 'add')));
    for (const size of SIZES) target(`DEL at ${size} <= 0.5x reference`, delRatio(n, size) <= 0.5, ratio(med(size, n, 'del'), med(size, 'reference', 'del')));
    flat(n);
    const base = st['node -e 0'].median;
    target('VERSION within 10 ms of `node -e 0`', st.ours.median - base <= 10, signed(st.ours.median - base));
    target('peak RSS of an ADD < 64 MiB', rss[n] < 64 * 1024, peak(n));
  }
  console.log('\nthe rules:\n');
  const c1 = rate('ours', CONN_SIZES[0]);
  const cN = rate('ours', CONN_SIZES[1]);
  target(`connection rate with ${CONN_SIZES[1]} mappings within 5% of 1`, cN >= 0.95 * c1, `${Math.round(cN)} vs ${Math.round(c1)} conn/s = ${((cN / c1 - 1) * 100).toFixed(1)}%`);
  results.push(...rangeResults);
  for (const t of restoreBench.targets) target(t.label, t.ok, t.detail);
  console.log(`\n${results.every(Boolean) ? 'all targets met' : `${results.filter((x) => !x).length} target(s) missed`}`);
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (err) => {
    console.error(`bench failed: ${err?.stack ?? err}`);
    cleanup();
    process.exit(1);
  },
);
