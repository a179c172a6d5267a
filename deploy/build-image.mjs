#!/usr/bin/env node
// Builds the installer image (deploy/Containerfile) offline with podman: `FROM scratch` plus the
// self-contained executable (named in build/executable.json) and the shared libraries `ldd` says it
// loads. Nothing is pulled from a registry.
//
//   node deploy/build-image.mjs [--tag NAME] [--save FILE.tar]
//
// --save writes the image as an OCI archive (`podman load -i FILE.tar`, or `ctr -n k8s.io images import`).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const executable = join(root, JSON.parse(readFileSync(join(root, 'build', 'executable.json'), 'utf8')).selfContained);

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const tag = option('--tag') ?? `localhost/portmap:${version}`;
const save = option('--save');

if (!existsSync(executable)) {
  console.error(`${executable} is missing: run npm run build first`);
  process.exit(1);
}

/** The files the dynamic loader maps for `file` (empty for a static executable). */
export function sharedLibraries(file) {
  let out;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8' });
  } catch (err) {
    if (/not a dynamic executable/.test(String(err.stdout ?? '') + String(err.stderr ?? ''))) return [];
    throw err;
  }
  const libs = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
    else if (/not found/.test(line)) throw new Error(`ldd ${file}: ${line.trim()}`);
  }
  return libs;
}

const context = mkdtempSync(join(tmpdir(), 'portmap-image-'));
try {
  const rootfs = join(context, 'rootfs');
  mkdirSync(rootfs);
  copyFileSync(executable, join(rootfs, 'portmap'));
  chmodSync(join(rootfs, 'portmap'), 0o755);
  const libs = sharedLibraries(executable);
  for (const lib of libs) {
    mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(rootfs, lib)); // follows symlinks: the file itself, under the name the loader asks for
  }
  copyFileSync(join(root, 'deploy', 'Containerfile'), join(context, 'Containerfile'));
  const label = `org.opencontainers.image.version=${version}`;
  const build = ['build', '--pull=never', '--network=none', '--tag', tag, '--label', label, '-f', join(context, 'Containerfile'), context];
  execFileSync('podman', build, { stdio: ['ignore', 'inherit', 'inherit'] });
  console.log(`built ${tag}: /portmap (${executable}) and ${libs.length} shared libraries: ${libs.join(' ')}`);
  if (save) {
    rmSync(save, { force: true });
    execFileSync('podman', ['save', '--format', 'oci-archive', '-o', save, tag], { stdio: ['ignore', 'inherit', 'inherit'] });
    console.log(`saved ${save}`);
  }
} finally {
  rmSync(context, { recursive: true, force: true });
}
