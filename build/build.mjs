// Bundles src/main.ts into one executable file, dist/portmap (CommonJS, so it runs from any directory,
// with or without a package.json beside it). Modules reached through import() stay lazy in the bundle.
//
// Then builds dist/portmap-sea, a self-contained executable for nodes without Node.js: a copy of this
// Node binary with the bundle (and V8's code cache for it) injected as a single executable application
// (https://nodejs.org/docs/latest-v20.x/api/single-executable-applications.html).
// A failed SEA build is a warning, unless CI is set or --require-sea is given: then it fails the build.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { accessSync, chmodSync, constants, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'portmap');
const seaFile = join(root, 'dist', 'portmap-sea');
const SHEBANG = '#!/usr/bin/env node';
mkdirSync(dirname(outfile), { recursive: true });

const bundleOptions = {
  entryPoints: [join(root, 'src', 'main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
};
/**
 * dist/portmap: one CommonJS file holding the bundle's code and V8's code cache for it, produced after a
 * warm-up run (src/host/warm-up.ts): a CNI call then skips compiling what it runs (about 8 ms per call
 * here). A Node whose V8 differs from this build's rejects the cache and compiles as usual.
 */
async function buildBundle() {
  const result = await build({ ...bundleOptions, write: false, define: { PORTMAP_SNAPSHOT: 'false' } });
  const code = `(function (exports, require, module, __filename, __dirname) {${result.outputFiles[0].text}\n})`;
  const work = mkdtempSync(join(tmpdir(), 'portmap-bundle-'));
  try {
    const cacheFile = join(work, 'code.cache');
    const trainer = join(work, 'train.cjs');
    writeFileSync(join(work, 'code.js'), code);
    writeFileSync(
      trainer,
      [
        "const { readFileSync, writeFileSync } = require('node:fs');",
        "const { Script } = require('node:vm');",
        `const script = new Script(readFileSync(${JSON.stringify(join(work, 'code.js'))}, 'utf8'), { filename: __filename });`,
        `process.on('exit', () => writeFileSync(${JSON.stringify(cacheFile)}, script.createCachedData()));`,
        'script.runInThisContext()(exports, require, module, __filename, __dirname);',
      ].join('\n'),
    );
    execFileSync(process.execPath, [trainer], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_OPTIONS: '', PORTMAP_TRAIN_CODE_CACHE: '1' } });
    const cache = readFileSync(cacheFile).toString('base64');
    const loader = [
      SHEBANG,
      '// portmap, the CNI hostPort plugin: the bundle (CODE) and V8\'s code cache for it (CACHE), by build/build.mjs.',
      "'use strict';",
      `const CODE = ${JSON.stringify(code)};`,
      `const CACHE = ${JSON.stringify(cache)};`,
      "const script = new (require('node:vm').Script)(CODE, { filename: __filename, cachedData: Buffer.from(CACHE, 'base64') });",
      'script.runInThisContext()(exports, require, module, __filename, __dirname);',
      '',
    ].join('\n');
    writeFileSync(`${outfile}.tmp`, loader, { mode: 0o755 });
    renameSync(`${outfile}.tmp`, outfile);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // The repository's package.json says "type": "module"; the bundle is CommonJS wherever it is installed.
  writeFileSync(join(dirname(outfile), 'package.json'), '{"type": "commonjs"}\n');
  console.log(`built ${outfile}`);
}
await buildBundle();

/** Whether a program is on PATH. */
function onPath(program) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * The SEA. By default its main script is a V8 startup snapshot (`useSnapshot`) of the bundle built with
 * PORTMAP_SNAPSHOT=true: every module is loaded and initialised at build time (src/host/snapshot.ts),
 * so a CNI call skips module evaluation and zod schema construction (about 15 ms of CPU per call here,
 * see bench/README.md). PORTMAP_SEA=codecache builds the plain bundle with V8's code cache instead.
 * The copied binary is stripped of its debug symbols first when `strip` exists (about 13 MB smaller);
 * the blob is injected with postject.
 */
async function buildSea() {
  const work = mkdtempSync(join(tmpdir(), 'portmap-sea-'));
  try {
    const main = join(work, 'main.cjs');
    const blob = join(work, 'sea.blob');
    const config = join(work, 'sea-config.json');
    const snapshot = process.env.PORTMAP_SEA !== 'codecache';
    await build({ ...bundleOptions, outfile: main, define: { PORTMAP_SNAPSHOT: String(snapshot) } });
    writeFileSync(config, JSON.stringify({ main, output: blob, disableExperimentalSEAWarning: true, ...(snapshot ? { useSnapshot: true } : { useCodeCache: true }) }));
    execFileSync(process.execPath, ['--experimental-sea-config', config], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });

    const exe = join(work, 'portmap-sea');
    copyFileSync(process.execPath, exe);
    chmodSync(exe, 0o755);
    if (onPath('strip')) execFileSync('strip', ['--strip-all', exe], { stdio: 'ignore' });
    const { inject } = (await import('postject')).default;
    await inject(exe, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2' });

    // A smoke test before it replaces the previous one: it must answer VERSION on its own.
    const out = execFileSync(exe, [], { input: '{"cniVersion":"1.0.0"}', env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' } });
    if (!/"supportedVersions"/.test(out.toString())) throw new Error(`the SEA answered VERSION with ${JSON.stringify(out.toString())}`);
    mkdirSync(dirname(seaFile), { recursive: true });
    copyFileSync(exe, `${seaFile}.tmp`);
    renameSync(`${seaFile}.tmp`, seaFile);
    console.log(`built ${seaFile} (self-contained, Node ${process.versions.node}, ${snapshot ? 'startup snapshot' : 'code cache'})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const requireSea = process.argv.includes('--require-sea') || ['1', 'true'].includes((process.env.CI ?? '').toLowerCase());
if (process.argv.includes('--no-sea')) {
  console.log('skipped the self-contained executable (--no-sea)');
} else {
  try {
    await buildSea();
  } catch (err) {
    rmSync(seaFile, { force: true }); // never leave a stale one beside a new bundle
    const msg = `could not build the self-contained executable ${seaFile}: ${err?.message ?? err}\n` +
      '  it needs Node >= 20 with single executable application support and the postject devDependency (npm install)';
    if (requireSea) {
      console.error(`error: ${msg}`);
      process.exit(1);
    }
    console.warn(`warning: ${msg}\n  dist/portmap (needs node on PATH) was built`);
  }
}
