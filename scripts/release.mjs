#!/usr/bin/env node
// Makes the release files of this version: the self-contained executable as
// portmap-<version>-linux-<arch> and its SHA-256 file (sha256sum format: `sha256sum -c` checks it), and
// with --image the installer image as an OCI archive (deploy/build-image.mjs) with its SHA-256 file.
//
//   npm run release [-- --no-build] [-- --image] [-- --out DIR]     (default DIR: dist/release)
//
// Builds first (npm run build), then refuses to release an executable whose `--version` is not
// package.json's version or that needs anything beside itself to answer a CNI VERSION call.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const executable = join(root, JSON.parse(readFileSync(join(root, 'build', 'executable.json'), 'utf8')).selfContained);
const args = process.argv.slice(2);
const outIndex = args.indexOf('--out');
const out = outIndex >= 0 ? resolve(args[outIndex + 1]) : join(root, 'dist', 'release');
/** Architecture names as the CNI plugins and Kubernetes releases spell them. */
const ARCH = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' }[process.arch] ?? process.arch;

const fail = (msg) => {
  console.error(`release: ${msg}`);
  process.exit(1);
};

if (!args.includes('--no-build')) execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
if (!existsSync(executable)) fail(`${executable} was not built`);

const reported = execFileSync(executable, ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } });
if (!reported.startsWith(`portmap ${version}\n`)) fail(`${executable} --version says ${JSON.stringify(reported.split('\n')[0])}, package.json says ${version}`);
const answer = execFileSync(executable, [], { input: '{"cniVersion":"1.0.0"}', encoding: 'utf8', env: { CNI_COMMAND: 'VERSION', PATH: '/nonexistent' } });
if (!answer.includes('"supportedVersions"')) fail(`${executable} did not answer CNI VERSION on its own: ${answer}`);

mkdirSync(out, { recursive: true });

/** Copies `from` to DIR/name atomically and writes name.sha256 beside it. */
function publish(from, name) {
  const target = join(out, name);
  copyFileSync(from, `${target}.tmp`);
  chmodSync(`${target}.tmp`, 0o755);
  renameSync(`${target}.tmp`, target);
  const hash = createHash('sha256').update(readFileSync(target)).digest('hex');
  writeFileSync(`${target}.sha256`, `${hash}  ${basename(target)}\n`);
  console.log(`${target}\n${target}.sha256  (${hash})`);
}

publish(executable, `portmap-${version}-linux-${ARCH}`);
if (args.includes('--image')) {
  const archive = join(out, `portmap-${version}-image-linux-${ARCH}.tar`);
  const build = [join(root, 'deploy', 'build-image.mjs'), '--tag', `localhost/portmap:${version}`, '--save', `${archive}.build`];
  execFileSync(process.execPath, build, { stdio: 'inherit' });
  publish(`${archive}.build`, basename(archive));
  rmSync(`${archive}.build`, { force: true });
}
