// Bundles src/main.ts with esbuild into one CommonJS file and makes the two things `npm run build` ships:
//
//   dist/portmap             the bundle with V8's code cache for it, `#!/usr/bin/env node`: needs node >= 20
//   dist/portmap-standalone  the same bundle compiled by Bun's single-file compiler (`bun build --compile`)
//                            into a self-contained executable: the Bun runtime and the bundle's bytecode in
//                            one ELF file, no Node.js or Bun needed on the node. README installs this one.
//
// Bun comes from the npm registry, pinned in package.json (optionalDependencies, one package per CPU:
// npm installs the one that matches this machine); nothing is downloaded at build time. A failed
// standalone build is a warning, unless CI is set or --require-standalone is given: then it fails the
// build. --no-standalone skips it.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const outfile = join(root, 'dist', 'portmap');
// Named in one place, for the release, the image and the tests too.
const standaloneFile = join(root, JSON.parse(readFileSync(join(root, 'build', 'executable.json'), 'utf8')).selfContained);
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
  // `portmap --version` prints it (src/cli/cli.ts).
  define: { PORTMAP_VERSION: JSON.stringify(pkg.version) },
};

/**
 * dist/portmap: one CommonJS file holding the bundle's code and V8's code cache for it, produced after a
 * warm-up run (src/startup/warm-up.ts): a CNI call then skips compiling what it runs (see bench/README.md
 * for what it saves). A Node whose V8 differs from this build's rejects the cache and compiles as usual.
 */
async function buildBundle() {
  const result = await build({ ...bundleOptions, write: false });
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

/**
 * The Bun binary of the package npm installed for this CPU (package.json's optionalDependencies). On
 * x64 it is the "baseline" build (no AVX2 needed), so the executable runs on every x86-64 node.
 */
function bunBinary() {
  const name = { x64: '@oven/bun-linux-x64-baseline', arm64: '@oven/bun-linux-aarch64' }[process.arch];
  if (process.platform !== 'linux' || !name) throw new Error(`no Bun package for ${process.platform}/${process.arch} in package.json`);
  const require = createRequire(join(root, 'package.json'));
  const dir = dirname(require.resolve(`${name}/package.json`));
  const version = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
  return { bin: join(dir, 'bin', 'bun'), version };
}

/**
 * JavaScriptCore's JIT tier-up thresholds, scaled: a CNI call runs each function a few times, and
 * compiling them (JIT threads, and the compiler's own code paged in) cost more CPU and memory than it
 * saved (measured: bench/README.md). 1000x keeps a call in the interpreter, on bytecode built at build time.
 */
const JIT_POLICY = 1000;

/**
 * The standalone executable: the esbuild bundle (the same code as dist/portmap) compiled by
 * `bun build --compile` with the bundle's bytecode (--bytecode: no parsing or compiling at start).
 * The executable must not read anything of the directory it is started in: .env and bunfig.toml
 * autoloading are off (a .env file in a runtime's working directory would otherwise set our
 * environment), and so are tsconfig.json and package.json.
 */
async function buildStandalone() {
  const bun = bunBinary();
  const work = mkdtempSync(join(tmpdir(), 'portmap-standalone-'));
  try {
    const main = join(work, 'portmap.cjs');
    const exe = join(work, 'portmap-standalone');
    await build({ ...bundleOptions, outfile: main });
    execFileSync(
      bun.bin,
      [
        'build', main, '--compile', '--minify', '--bytecode', '--format=cjs', '--target=bun', '--outfile', exe,
        '--no-compile-autoload-dotenv', '--no-compile-autoload-bunfig',
        '--no-compile-autoload-tsconfig', '--no-compile-autoload-package-json',
        `--compile-jit-policy=${JIT_POLICY}`,
      ],
      // Bun keeps nothing outside `work` (its install cache is not used by a build).
      { cwd: work, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, BUN_INSTALL_CACHE_DIR: join(work, 'cache'), DO_NOT_TRACK: '1' } },
    );

    // A smoke test before it replaces the previous one: it must answer VERSION on its own, and say
    // which runtime it embeds.
    const env = { PATH: '/nonexistent' };
    const out = execFileSync(exe, [], { input: '{"cniVersion":"1.0.0"}', env: { ...env, CNI_COMMAND: 'VERSION' }, cwd: work }).toString();
    if (!/"supportedVersions"/.test(out)) throw new Error(`the standalone executable answered VERSION with ${JSON.stringify(out)}`);
    const version = execFileSync(exe, ['--version'], { env, cwd: work }).toString();
    if (!version.includes(`portmap ${pkg.version}`) || !version.includes(`Bun ${bun.version}`)) {
      throw new Error(`the standalone executable's --version says ${JSON.stringify(version)}`);
    }
    copyFileSync(exe, `${standaloneFile}.tmp`);
    chmodSync(`${standaloneFile}.tmp`, 0o755);
    renameSync(`${standaloneFile}.tmp`, standaloneFile);
    console.log(`built ${standaloneFile} (self-contained, Bun ${bun.version})`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const requireStandalone = process.argv.includes('--require-standalone') || ['1', 'true'].includes((process.env.CI ?? '').toLowerCase());
if (process.argv.includes('--no-standalone')) {
  console.log('skipped the standalone executable (--no-standalone)');
} else {
  try {
    await buildStandalone();
  } catch (err) {
    rmSync(standaloneFile, { force: true }); // never leave a stale one beside a new bundle
    const msg = `could not build the standalone executable ${standaloneFile}: ${err?.message ?? err}\n` +
      '  it needs the Bun package of package.json\'s optionalDependencies for this CPU (npm ci installs it)';
    if (requireStandalone) {
      console.error(`error: ${msg}`);
      process.exit(1);
    }
    console.warn(`warning: ${msg}\n  dist/portmap (needs node on PATH) was built`);
  }
}
