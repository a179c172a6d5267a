/**
 * Only in the self-contained executable's build (build/build.mjs, SEA with a V8 startup snapshot):
 * loads every module while the snapshot is being built, so the executable starts with them initialised
 * (zod schemas built, built-in modules loaded) instead of doing that work on every CNI call. Then it runs
 * the warm-up (warm-up.ts), so that the functions a call uses are compiled in the snapshot too (a cold
 * first spawn or lock alone costs about 1 ms more each).
 * Nothing here may capture per-call state (environment, pid, time) at load: the snapshot is taken once.
 */
import { setFlagsFromString, startupSnapshot } from 'node:v8';

export async function prepareSnapshot(start: () => void): Promise<void> {
  await Promise.all([
    import('../cni/skel.js'),
    import('../plugin/plugin.js'),
    import('../backends/nftables/backend.js'),
    import('../backends/iptables/backend.js'),
    import('../cli/cli.js'),
  ]);
  // V8 cannot serialize a regular expression compiled to machine code (it aborts the build), and tiers
  // one up after a few runs: interpret them during the warm-up. The flags are restored before the
  // snapshot is taken, since the executable refuses a snapshot built with other flags.
  const { warmUpPurePath, warmUpProcessAndLock } = await import('./warm-up.js');
  setFlagsFromString('--regexp-interpret-all');
  try {
    await warmUpPurePath();
  } finally {
    setFlagsFromString('--no-regexp-interpret-all');
    setFlagsFromString('--regexp-tier-up');
  }
  await warmUpProcessAndLock();
  startupSnapshot.setDeserializeMainFunction(start);
}
