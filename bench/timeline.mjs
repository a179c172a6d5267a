#!/usr/bin/env node
// Where the time of one CNI call goes, inside the process: builds the bundle with a banner that marks
// (performance.now(), ms since the process started) the bundle's first line, the end of stdin, the
// lock, each child process's spawn and exit and the call's process.exit, then compiles it as
// build/build.mjs does (Bun) and runs it next to the plain bundle on Node. Each executable does
// BENCH_TIMELINE_RUNS (default 30) ADD+DEL pairs in a node namespace of its own (pmt<hex>-*, deleted at the
// end); the median of every mark is printed, with the whole call as its parent sees it.
// Run as root: `node bench/timeline.mjs` (after npm run build). Nothing else of the bench is needed.
import { build } from 'esbuild';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const RUNS = Number(process.env.BENCH_TIMELINE_RUNS ?? 30);
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
delete process.env.NODE_EXTRA_CA_CERTS;

/** Marks kept in the process and written to stderr at process.exit (the call's stdout stays clean). */
const BANNER = `
const __tl = [];
const __mark = (n) => __tl.push([n, performance.now()]);
globalThis.__mark = __mark;
__mark('bundle starts');
require = ((load) => {
  const patched = new Set();
  const patch = {
    'fs': (fs) => {
      const readSync = fs.readSync;
      fs.readSync = function (fd, ...rest) { const n = readSync.call(this, fd, ...rest); if (fd === 0 && n === 0) __mark('stdin read'); return n; };
    },
    'net': (net) => {
      const createServer = net.createServer;
      net.createServer = function (...a) {
        const s = createServer.apply(this, a);
        const listen = s.listen;
        s.listen = function (...b) {
          __mark('lock: bind');
          const cb = b[b.length - 1];
          if (typeof cb === 'function') b[b.length - 1] = function (...c) { __mark('lock: held'); return cb.apply(this, c); };
          return listen.apply(this, b);
        };
        return s;
      };
    },
    'child_process': (cp) => {
      const spawn = cp.spawn;
      cp.spawn = function (cmd, args, ...r) {
        const name = [cmd, ...(args ?? [])].filter((a) => !a.startsWith('{')).slice(0, 3).join(' ');
        __mark('spawn ' + name);
        const c = spawn.call(this, cmd, args, ...r);
        c.on('exit', () => __mark('exited ' + name));
        return c;
      };
    },
  };
  return (request) => {
    const id = request.replace(/^node:/, '');
    const first = !patched.has(id);
    if (first) __mark('require ' + id);
    const m = load(request);
    if (first) {
      patched.add(id);
      patch[id]?.(m);
      __mark('loaded ' + id);
    }
    return m;
  };
})(require);
{
  const exit = process.exit;
  process.exit = function (code) {
    __mark('process.exit');
    require('node:fs').writeSync(2, 'TIMELINE ' + JSON.stringify(__tl) + '\\n');
    return exit.call(process, code);
  };
}
`;

function sh(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** Marks around the body of every module of src/ (run once its imports are initialised): its own init cost. */
const moduleMarks = {
  name: 'module-marks',
  setup(b) {
    b.onLoad({ filter: /[/]src[/].*[.]ts$/ }, (args) => {
      const rel = args.path.slice(ROOT.length + 1);
      const text = readFileSync(args.path, 'utf8');
      return { loader: 'ts', contents: `__mark('init ${rel}');\n${text}\n__mark('done ${rel}');\n` };
    });
  },
};

async function executables(work) {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  const main = join(work, 'portmap.cjs');
  await build({
    entryPoints: [join(ROOT, 'src', 'main.ts')], bundle: true, platform: 'node', target: 'node20', format: 'cjs', minify: true,
    legalComments: 'none', logLevel: 'warning', outfile: main, banner: { js: BANNER }, define: { PORTMAP_VERSION: JSON.stringify(pkg.version) },
    plugins: [moduleMarks],
  });
  const name = { x64: '@oven/bun-linux-x64-baseline', arm64: '@oven/bun-linux-aarch64' }[process.arch];
  const bun = join(dirname(createRequire(join(ROOT, 'package.json')).resolve(`${name}/package.json`)), 'bin', 'bun');
  const exe = join(work, 'portmap-standalone');
  execFileSync(bun, ['build', main, '--compile', '--minify', '--bytecode', '--format=cjs', '--target=bun', '--outfile', exe,
    '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig', '--no-compile-autoload-tsconfig', '--no-compile-autoload-package-json',
    '--compile-jit-policy=1000'], { cwd: work, stdio: 'ignore' });
  writeFileSync(join(work, 'node-bundle'), `#!/bin/sh\nexec ${process.execPath} ${main}\n`, { mode: 0o755 });
  return [{ name: 'standalone (Bun)', bin: exe }, { name: `bundle (Node ${process.version}, no code cache)`, bin: join(work, 'node-bundle') }];
}

function call(ns, bin, command, id, config) {
  return new Promise((resolve) => {
    const env = { PATH, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${ns}-pod`, CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };
    const t = process.hrtime.bigint();
    const child = spawn('ip', ['netns', 'exec', `${ns}-node`, bin], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.stdout.resume();
    child.stdin.end(config);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t) / 1e6;
      const line = err.split('\n').find((l) => l.startsWith('TIMELINE '));
      if (code !== 0 || !line) throw new Error(`${bin} ${command} failed (${code}): ${err}`);
      resolve({ ms, marks: JSON.parse(line.slice(9)) });
    });
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'portmap-timeline-'));
  const ns = `pmt${randomBytes(3).toString('hex')}`;
  try {
    const exes = await executables(work);
    sh('ip', ['netns', 'add', `${ns}-node`]);
    sh('ip', ['netns', 'add', `${ns}-pod`]);
    const n = ['-n', `${ns}-node`];
    sh('ip', [...n, 'link', 'add', 'cni0', 'type', 'bridge']);
    sh('ip', [...n, 'addr', 'add', '10.244.0.1/16', 'dev', 'cni0']);
    sh('ip', [...n, 'link', 'set', 'cni0', 'up']);
    sh('ip', ['link', 'add', 'veth0', 'netns', `${ns}-node`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', `${ns}-pod`]);
    sh('ip', [...n, 'link', 'set', 'veth0', 'master', 'cni0', 'up']);
    const config = JSON.stringify({
      cniVersion: '1.0.0', name: 'timeline', type: 'portmap', capabilities: { portMappings: true },
      runtimeConfig: { portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
      prevResult: { cniVersion: '1.0.0', interfaces: [{ name: 'cni0' }, { name: 'veth0' }, { name: 'eth0', sandbox: `/var/run/netns/${ns}-pod` }], ips: [{ address: '10.244.0.2/16', gateway: '10.244.0.1', interface: 2 }] },
    });
    for (const exe of exes) {
      const runs = { ADD: [], DEL: [] };
      for (let i = -2; i < RUNS; i++) {
        for (const verb of ['ADD', 'DEL']) {
          const r = await call(ns, exe.bin, verb, `timeline-${i + 2}`, config);
          if (i >= 0) runs[verb].push(r);
        }
      }
      for (const verb of ['ADD', 'DEL']) {
        console.log(`\n${exe.name} ${verb}: whole call ${median(runs[verb].map((r) => r.ms)).toFixed(1)} ms (median of ${RUNS}, ip netns exec included)`);
        const names = runs[verb][0].marks.map(([m]) => m);
        for (const [k, name] of names.entries()) {
          const at = median(runs[verb].map((r) => r.marks[k]?.[1] ?? NaN));
          console.log(`  ${at.toFixed(1).padStart(6)} ms  ${name}`);
        }
      }
    }
  } finally {
    spawnSync('ip', ['netns', 'del', `${ns}-pod`]);
    spawnSync('ip', ['netns', 'del', `${ns}-node`]);
    rmSync(work, { recursive: true, force: true });
  }
}
await main();
