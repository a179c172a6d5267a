/**
 * Builds what the tests exec: the bundle (dist/portmap) when missing, and the libcni runtime
 * (.cache/cnirun) from test/runtime/cnirun with Debian's Go and libcni sources.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');

export default function setup(): void {
  if (!existsSync(join(root, 'dist', 'portmap'))) {
    execFileSync(process.execPath, [join(root, 'build', 'build.mjs')], { stdio: 'inherit' });
  }
  const out = join(root, '.cache', 'cnirun');
  const src = join(root, 'test', 'runtime', 'cnirun', 'main.go');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(root, '.cache'), { recursive: true });
    try {
      execFileSync('go', ['build', '-o', out, '.'], {
        cwd: join(root, 'test', 'runtime', 'cnirun'),
        stdio: 'inherit',
        env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOFLAGS: '', GOCACHE: join(root, '.cache', 'go-build') },
      });
    } catch (err) {
      throw new Error(
        `could not build the libcni test runtime (${(err as Error).message}); install golang-go and golang-github-appc-cni-dev (see .ci/run)`,
        { cause: err },
      );
    }
  }
}
