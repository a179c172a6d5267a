// Process and statistics helpers shared by the bench scripts.
import { spawnSync } from 'node:child_process';

/** Runs a program (no shell), returns its stdout; throws with its stderr on an unexpected exit status. */
export function sh(cmd, args, { input, ok = [0] } = {}) {
  const res = spawnSync(cmd, args, { input, encoding: 'utf8', maxBuffer: 256 << 20 });
  if (res.error) throw new Error(`${cmd}: ${res.error.message}`);
  if (!ok.includes(res.status)) throw new Error(`${cmd} ${args.join(' ').slice(0, 200)} failed (${res.status}): ${res.stderr.trim().slice(0, 2000)}`);
  return res.stdout;
}

export const inNs = (ns, args, opts) => sh('ip', ['netns', 'exec', ns, ...args], opts);

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
