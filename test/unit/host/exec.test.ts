import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CommandError, SBIN_DIRS, failureReason, locate, missingMessage, onPath, run, setFallbackDirs } from '../../../src/host/exec.js';

// Real processes (node itself), no shell: what run() promises about input, output, failure and settling.
const node = process.execPath;

describe('run', () => {
  it('gives the child /dev/null as stdin without input, and the input otherwise', async () => {
    const echo = ['-e', 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>process.stdout.write(JSON.stringify(s)))'];
    expect((await run(node, echo)).stdout).toBe('""');
    expect((await run(node, echo, { input: 'abc' })).stdout).toBe('"abc"');
  });

  it('rejects a failing command with its exit status and stderr in the message', async () => {
    const err = await run(node, ['-e', 'console.error("boom");process.exit(3)']).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandError);
    expect((err as CommandError).code).toBe(3);
    expect((err as CommandError).message).toMatch(/exit 3.*boom/s);
  });

  it('names the package of a missing program, or the root tool directory that PATH lacks', async () => {
    const err = await run('conntrack-not-here', ['--version'], { env: { PATH: '/nonexistent' } }).catch((e: unknown) => e);
    expect((err as CommandError).kind).toBe('missing');
    expect(missingMessage('nft-not-here', 'nftables')).toMatch(/not found on PATH: install it \(Debian\/Ubuntu: apt-get install nftables\)/);
    // nft is installed in a root tool directory on the test machines: the fix names that directory.
    const nft = locate('nft', '', SBIN_DIRS);
    expect(nft).toBeDefined();
    expect(missingMessage('nft')).toBe(`nft not found on PATH: it is in ${dirname(nft!.file)}; add ${dirname(nft!.file)} to the runtime's PATH`);
  });

  it('with settledBy, resolves once the output satisfies it, before the child exits', async () => {
    // The child prints a complete JSON document, then lingers for 2 s (as nft lingers after a commit).
    const started = Date.now();
    const res = await run(node, ['-e', 'process.stdout.write("{\\"done\\":true}");setTimeout(()=>{},2000)'], {
      settledBy: (out) => {
        try {
          return (JSON.parse(out) as { done?: boolean }).done === true;
        } catch {
          return false;
        }
      },
    });
    expect(res).toEqual({ stdout: '{"done":true}', stderr: '', code: 0 });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('with settledBy, still reports a child that fails before settling', async () => {
    const err = await run(node, ['-e', 'console.error("refused");process.exit(1)'], { settledBy: (out) => out.length > 0 }).catch((e: unknown) => e);
    expect((err as CommandError).code).toBe(1);
    expect((err as CommandError).stderr).toMatch(/refused/);
  });
});

describe('onPath', () => {
  it('finds executables on the given PATH (no fallback directories by default)', () => {
    expect(onPath('node', '/nonexistent')).toBe(false);
    expect(onPath(node.split('/').pop()!, node.split('/').slice(0, -1).join('/'))).toBe(true);
  });
});

describe('fallback directories (the operator CLI: /usr/sbin and friends after PATH)', () => {
  const withFallback = async (fn: (dir: string) => Promise<void> | void) => {
    const dir = mkdtempSync(join(tmpdir(), 'pm-sbin-'));
    writeFileSync(join(dir, 'pm-fake-tool'), '#!/bin/sh\necho "fake $1"\n', { mode: 0o755 });
    setFallbackDirs([dir]);
    try {
      await fn(dir);
    } finally {
      setFallbackDirs([]);
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it('are searched only once set, after PATH, and locate says the program is not on PATH', async () => {
    expect(onPath('pm-fake-tool', '/nonexistent')).toBe(false);
    await withFallback((dir) => {
      expect(onPath('pm-fake-tool', '/nonexistent')).toBe(true);
      expect(locate('pm-fake-tool', '/nonexistent')).toEqual({ file: join(dir, 'pm-fake-tool'), onPath: false });
      expect(locate('pm-fake-tool', dir)).toEqual({ file: join(dir, 'pm-fake-tool'), onPath: true });
    });
  });

  it('run finds a program there when PATH lacks it, and a missing one names them', async () => {
    await withFallback(async (dir) => {
      expect((await run('pm-fake-tool', ['x'], { env: { PATH: '/nonexistent' } })).stdout).toBe('fake x\n');
      const err = await run('nft', ['--version'], { env: { PATH: '/nonexistent' } }).catch((e: unknown) => e);
      expect((err as Error).message).toContain(`not found on PATH or in ${dir}`);
    });
  });
});

describe('failureReason', () => {
  const failed = (stderr: string) => new CommandError('nft -j {...} failed (exit 1): ...', 'nft', [], 1, stderr, 'failed');

  it("says what the command said, once per line, without its 'Error:' labels", () => {
    const nft = Array(3).fill('internal:0:0-0: Error: No such file or directory\n').join('\n');
    expect(failureReason(failed(nft))).toBe('No such file or directory');
    expect(failureReason(failed('internal:0:0-0: Error: Could not process rule: File exists\n'))).toBe('Could not process rule: File exists');
    const ipt = "iptables-restore v1.8.9 (nf_tables): Chain 'CNI-HOSTPORT-DNAT' does not exist\nError occurred at line: 3\nTry `iptables-restore -h' or 'iptables-restore --help' for more information.\n";
    expect(failureReason(failed(ipt))).toBe("iptables-restore v1.8.9 (nf_tables): Chain 'CNI-HOSTPORT-DNAT' does not exist; at line 3");
  });

  it('anything else: its message', () => {
    expect(failureReason(failed(''))).toBe('nft -j {...} failed (exit 1): ...');
    expect(failureReason(new Error('timed out'))).toBe('timed out');
  });
});
