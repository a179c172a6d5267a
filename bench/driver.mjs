// Runs inside a node network namespace (started with `ip netns exec`) and execs plugins exactly as a
// CNI runtime does: the binary by path, CNI_* variables in its environment, the configuration on stdin.
// It times each call itself (process.hrtime around spawn .. close), so `ip netns exec` and the bench's
// own bookkeeping are not in the figures.
//
// Protocol: one JSON request per line on stdin {id, bin, env, input, rss?}; one JSON reply per line on
// stdout {id, ms, code, stdout, stderr, maxRssKiB?}. With rss, the call runs under /usr/bin/time
// (`-f %M`), for its peak memory; such calls are not used for timing.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const scratch = mkdtempSync(join(tmpdir(), 'portmap-bench-driver-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

function call({ bin, env, input, rss }) {
  return new Promise((resolve) => {
    const rssFile = join(scratch, 'rss');
    const [cmd, args] = rss ? ['/usr/bin/time', ['-f', '%M', '-o', rssFile, bin]] : [bin, []];
    const out = [];
    const err = [];
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdout.on('data', (b) => out.push(b));
    child.stderr.on('data', (b) => err.push(b));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
    child.on('error', (e) => resolve({ ms: 0, code: -1, stdout: '', stderr: e.message }));
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const res = { ms, code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (rss) {
        try {
          res.maxRssKiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
        } catch {
          res.maxRssKiB = undefined;
        }
      }
      resolve(res);
    });
  });
}

const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  const res = await call(req);
  process.stdout.write(`${JSON.stringify({ id: req.id, ...res })}\n`);
}
