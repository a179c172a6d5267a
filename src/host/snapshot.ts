/**
 * Only in the self-contained executable's build (build/build.mjs, SEA with a V8 startup snapshot):
 * loads every module while the snapshot is being built, so the executable starts with them initialised
 * (zod schemas built, built-in modules loaded) instead of doing that work on every CNI call.
 * Nothing here may capture per-call state (environment, pid, time) at load: the snapshot is taken once.
 */
import { startupSnapshot } from 'node:v8';

export async function prepareSnapshot(start: () => void): Promise<void> {
  await Promise.all([
    import('../cni/skel.js'),
    import('../portmap/service.js'),
    import('../backends/nftables/index.js'),
    import('../backends/iptables/index.js'),
    import('../cli/cli.js'),
  ]);
  startupSnapshot.setDeserializeMainFunction(start);
}
