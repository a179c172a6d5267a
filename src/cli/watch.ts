/**
 * `portmap watch`: a long-running follower that restores our hostPort rules within a second after a
 * firewall reload or flush removed them. It follows `nft monitor` (nftables and iptables-nft changes;
 * nothing runs while nothing changes) and checks the legacy iptables flavour every few seconds when a
 * legacy nat table exists. Each check is the same as `portmap restore` (under the lock, live pods only)
 * and restores only when something is damaged; each restore is logged. Exits cleanly on SIGTERM/SIGINT.
 */
import { followRuleset, type Follower } from '../backends/nftables/monitor.js';
import { legacyNatExists } from '../backends/iptables/flavour.js';
import { onPath } from '../host/exec.js';
import { log } from '../host/log.js';
import { restoreAll, type RestoreReport } from '../plugin/restore.js';

export interface WatchOptions {
  /** Our records (dataDir). */
  dataDir: string;
  /** The runtime's libcni cache, for adoption. */
  cacheDir: string;
  /** Adopt attachments the libcni cache lists without a record. */
  adopt: boolean;
  /** Seconds between checks of the legacy iptables flavour (which emits no events). */
  legacyInterval: number;
  /** Seconds between safety checks whatever happens (0: none). */
  safetyInterval: number;
}

function describe(r: RestoreReport): string {
  const damage = r.backends.filter((b) => b.damage.length > 0).map((b) => `${b.backend}: ${b.damage.slice(0, 3).join('; ')}`);
  return `restored ${r.restored.length} attachment(s) (${damage.join(' | ')})${r.restored.length <= 5 ? `: ${r.restored.map((i) => i.name).join(', ')}` : ''}`;
}

export async function runWatch(opts: WatchOptions): Promise<number> {
  let running = false;
  let pending = false;
  let stopping = false;
  let follower: Follower | undefined;
  const timers: NodeJS.Timeout[] = [];

  const check = async (why: string): Promise<void> => {
    if (stopping) return;
    if (running) {
      pending = true;
      return;
    }
    running = true;
    try {
      const r = await restoreAll({ dataDir: opts.dataDir, ...(opts.adopt ? { cacheDir: opts.cacheDir } : {}) });
      if (r.restored.length > 0) log.info(`${why}: ${describe(r)}`);
      else log.debug(`${why}: ${r.intact.length} attachment(s) intact`);
      for (const s of r.skipped.filter((x) => x.removed)) log.info(`removed the record of ${s.name}: ${s.reason}`);
      for (const b of r.backends) if (b.error) log.warn(`restore in the ${b.backend} backend failed: ${b.error}`);
    } catch (err) {
      log.warn(`${why}: restore failed: ${(err as Error).message}`);
    } finally {
      running = false;
    }
    if (pending && !stopping) {
      pending = false;
      await check('changes during the last check');
    }
  };

  const follow = (): void => {
    if (stopping || !onPath('nft')) return;
    follower = followRuleset(() => void check('netfilter change'));
    follower.done.then(
      () => undefined,
      (err: Error) => log.warn(err.message),
    ).finally(() => {
      if (!stopping) timers.push(setTimeout(follow, 1000)); // nft monitor ended: follow again
    });
  };

  const done = new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info(`portmap watch: ${sig}, stopping`);
      follower?.stop();
      for (const t of timers) clearTimeout(t);
      const wait = () => (running ? setTimeout(wait, 20) : resolve());
      wait();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });

  follow();
  log.info(`portmap watch: following netfilter changes${onPath('nft') ? ' (nft monitor)' : ''}, records in ${opts.dataDir}`);
  await check('start');
  const every = (seconds: number, what: string, cond: () => boolean) => {
    if (seconds <= 0) return;
    const t = setInterval(() => {
      if (cond()) void check(what);
    }, seconds * 1000);
    timers.push(t as unknown as NodeJS.Timeout);
  };
  every(opts.legacyInterval, 'legacy iptables check', () => legacyNatExists() || !onPath('nft'));
  every(opts.safetyInterval, 'periodic check', () => true);
  await done;
  for (const t of timers) clearInterval(t);
  return 0;
}
