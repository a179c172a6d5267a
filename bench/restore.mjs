#!/usr/bin/env node
// Restore benchmark (issue #13): `portmap restore` of 1,000 attachments in one call, after the rules were
// wiped (`nft flush ruleset` / `iptables -t nat -F`), for the nftables and the iptables (nf_tables) backend;
// and what keeping a record costs an ADD (one small JSON file, temp + rename), with and without fsync.
// Called from bench.mjs (benchRestore); runs alone too: `sudo node bench/restore.mjs`.
//
// The 1,000 records are generated with the plugin's own code (src/portmap/record.ts, bundled here), for
// attachments whose pod namespace is one live namespace of this benchmark; the restore itself is the real
// executable, exec'd in a node namespace this script creates and deletes. Nothing touches the root namespace.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inNs, median, sh } from './proc.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const N = Number(process.env.BENCH_RESTORE_N ?? 1000);
const RUNS = Number(process.env.BENCH_RESTORE_RUNS ?? 5);


/** The plugin's record and plan code, bundled from src/. */
export async function recordCode() {
  const dir = mkdtempSync(join(tmpdir(), 'portmap-bench-records-'));
  try {
    const file = join(dir, 'records.mjs');
    await build({
      stdin: {
        contents: [
          "export { recordOf } from './src/portmap/record.ts';",
          "export { recordId } from './src/portmap/record.ts';",
          "export { buildPlan, ownerFor } from './src/portmap/plan.ts';",
          "export { parseConfig } from './src/portmap/config.ts';",
          "export { parsePrevResult, containerAddresses } from './src/cni/result.ts';",
          "export { writeFileAtomic } from './src/host/files.ts';",
        ].join('\n'),
        resolveDir: ROOT, loader: 'ts', sourcefile: 'bench-records.ts',
      },
      outfile: file, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning',
    });
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const podIp = (i) => `10.244.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;

/** Writes N records (one mapping each) into dataDir, scoped to node namespace `node`, pods in `podPath`. */
export function writeRecords(r, { dataDir, node, podPath, backend }) {
  const nodeNs = statSync(`/var/run/netns/${node}`);
  const podNs = statSync(podPath);
  const scope = join(dataDir, `netns-${nodeNs.dev}-${nodeNs.ino}`);
  mkdirSync(scope, { recursive: true });
  const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  for (let i = 0; i < N; i++) {
    const ip = podIp(i);
    const config = r.parseConfig({
      cniVersion: '1.0.0', name: 'benchnet', type: 'portmap', backend,
      runtimeConfig: { portMappings: [{ hostPort: 20000 + i, containerPort: 80, protocol: 'tcp' }] },
      prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: podPath }], ips: [{ address: `${ip}/16`, interface: 0 }] },
    });
    const prev = r.parsePrevResult(config.prevResult, config.cniVersion);
    const plan = r.buildPlan(config, r.ownerFor(config, `bench-restore-${i}`, 'eth0'), r.containerAddresses(prev.result, 'eth0'));
    const rec = r.recordOf(plan, { backend, netns: { path: podPath, dev: podNs.dev, ino: podNs.ino }, bootId, now: Date.now() + i });
    writeFileSync(join(scope, `${r.recordId(rec)}.json`), JSON.stringify(rec));
  }
}

/** Microseconds per record write on the disk that holds /var/lib/cni: temp + rename, with and without fsync. */
function recordWriteCost(r, count = 500) {
  const base = '/var/lib/cni';
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'portmap-bench-'));
  const text = JSON.stringify({ v: 1, sample: 'x'.repeat(600) });
  try {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) r.writeFileAtomic(join(dir, `a${i}.json`), text);
    const t1 = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const tmp = join(dir, `.b${i}.tmp`);
      const fd = openSync(tmp, 'w', 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, join(dir, `b${i}.json`));
    }
    const t2 = process.hrtime.bigint();
    const fs = sh('stat', ['-f', '-c', '%T', base]).trim();
    return { plain: Number(t1 - t0) / 1000 / count, fsync: Number(t2 - t1) / 1000 / count, fs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs the restore benchmark with `bin` (the plugin executable). Returns printable rows and targets.
 */
export async function benchRestore(bin, log = (m) => process.stderr.write(`# ${m}\n`)) {
  const r = await recordCode();
  const prefix = `pmr${randomBytes(3).toString('hex')}`;
  const namespaces = [];
  const dirs = [];
  const rows = [];
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  try {
    for (const backend of ['nftables', 'iptables']) {
      const node = `${prefix}-${backend.slice(0, 3)}-node`;
      const pod = `${prefix}-${backend.slice(0, 3)}-pod`;
      for (const ns of [node, pod]) {
        sh('ip', ['netns', 'add', ns]);
        namespaces.push(ns);
      }
      const dataDir = mkdtempSync(join(tmpdir(), `${prefix}-data-`));
      dirs.push(dataDir);
      log(`restore: ${N} ${backend} records`);
      writeRecords(r, { dataDir, node, podPath: `/var/run/netns/${pod}`, backend });
      const restore = (...extra) => {
        const t0 = process.hrtime.bigint();
        const res = spawnSync('ip', ['netns', 'exec', node, bin, 'restore', '--json', '--data-dir', dataDir, '--no-adopt', ...extra], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.status !== 0) throw new Error(`portmap restore failed (${res.status}): ${res.stderr.slice(0, 2000)}`);
        const report = JSON.parse(res.stdout);
        if (report.restored.length !== N) throw new Error(`restore restored ${report.restored.length} of ${N}`);
        return ms;
      };
      const wipe = () => {
        if (backend === 'nftables') inNs(node, ['nft', 'flush', 'ruleset']);
        else for (const ipt of ['iptables', 'ip6tables']) inNs(node, [ipt, '-t', 'nat', '-F']);
      };
      const first = restore(); // into an empty node
      const times = [];
      const reads = [];
      for (let i = 0; i < RUNS; i++) {
        wipe();
        reads.push(restore('--dry-run'));
        times.push(restore());
      }
      // Check one restored forward is really there.
      const state = backend === 'nftables' ? inNs(node, ['nft', 'list', 'table', 'inet', 'cni_portmap']) : inNs(node, ['iptables-save', '-t', 'nat']);
      if (!state.includes(podIp(N - 1))) throw new Error(`restored ${backend} state lacks ${podIp(N - 1)}`);
      rows.push({ backend, first, median: median(times), max: Math.max(...times), read: median(reads) });
    }
    const write = recordWriteCost(r);
    return { n: N, rows, write };
  } finally {
    for (const ns of namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** Markdown for bench.mjs's output, and the target lines. */
export function formatRestore(res) {
  const lines = [`\n### Restore after a firewall reload (${res.n} attachments, one \`portmap restore\`)\n`,
    '| backend | into an empty node | after a wipe (median) | slowest | of which reading (--dry-run) |', '|---|---|---|---|---|'];
  for (const row of res.rows) {
    lines.push(`| ${row.backend} | ${row.first.toFixed(0)} ms | ${row.median.toFixed(0)} ms | ${row.max.toFixed(0)} ms | ${row.read.toFixed(0)} ms |`);
  }
  lines.push('', `Keeping a record (one ~700-byte JSON file, temp + rename, ${res.write.fs} under /var/lib/cni): ` +
    `${res.write.plain.toFixed(0)} us per write; with fsync ${res.write.fsync.toFixed(0)} us (not used: see src/host/files.ts).`);
  const targets = res.rows.map((row) => ({
    label: `restore of ${res.n} attachments (${row.backend}) within 1 s`, ok: row.median <= 1000, detail: `${row.median.toFixed(0)} ms`,
  }));
  return { text: lines.join('\n'), targets };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const bin = process.argv[2] ?? join(ROOT, 'dist', 'portmap');
  const res = await benchRestore(bin);
  const { text, targets } = formatRestore(res);
  console.log(text);
  for (const t of targets) console.log(`- ${t.ok ? 'PASS' : 'FAIL'}  ${t.label}: ${t.detail}`);
}
