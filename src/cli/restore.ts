/** `portmap restore`: re-creates the hostPort rules of every live pod from the records (and the libcni cache). */
import { DEFAULT_CNI_CACHE_DIR } from '../cni/cache.js';
import { DEFAULT_DATA_DIR } from '../plugin/records.js';
import { type RestoreReport, restoreAll } from '../plugin/restore.js';
import { table } from './format.js';
import { usageExit } from './usage.js';

export interface RestoreCliOptions {
  json: boolean;
  dataDir: string;
  cacheDir: string;
  adopt: boolean;
  force: boolean;
  dryRun: boolean;
}

export const defaultRestoreOptions = (): RestoreCliOptions => ({
  json: false, dataDir: DEFAULT_DATA_DIR, cacheDir: DEFAULT_CNI_CACHE_DIR, adopt: true, force: false, dryRun: false,
});

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The human report (pure). */
export function formatRestore(r: RestoreReport, dryRun = false): string {
  const lines: string[] = [];
  const verb = dryRun ? 'would restore' : 'restored';
  const damaged = r.backends.filter((b) => b.damage.length > 0);
  lines.push(
    `portmap restore: ${verb} ${plural(r.restored.length, 'attachment')}, ${r.intact.length} intact, ${r.skipped.length} skipped` +
      (damaged.length ? ` (${damaged.map((b) => `${b.backend}: ${b.damage.slice(0, 3).join('; ')}${b.damage.length > 3 ? '; ...' : ''}`).join(' | ')})` : ''),
  );
  const rows = [
    ...r.restored.map((i) => [dryRun ? 'would restore' : 'restored', i.name, i.backend, `${plural(i.forwards, 'forward')}${i.adopted ? ' (adopted from the libcni cache)' : ''}`]),
    ...r.intact.map((i) => ['intact', i.name, i.backend, plural(i.forwards, 'forward')]),
    ...r.skipped.map((s) => ['skipped', s.name, '-', `${s.reason}${s.removed ? ' (record removed)' : ''}`]),
  ];
  if (rows.length > 0) lines.push('', table(['STATE', 'ATTACHMENT', 'BACKEND', 'DETAIL'], rows).trimEnd());
  for (const b of r.backends) if (b.error) lines.push(`error: ${b.backend}: ${b.error}`);
  return `${lines.join('\n')}\n`;
}

export async function runRestore(opts: RestoreCliOptions, write: (s: string) => void): Promise<number> {
  const report = await restoreAll({
    dataDir: opts.dataDir,
    ...(opts.adopt ? { cacheDir: opts.cacheDir } : {}),
    force: opts.force,
    dryRun: opts.dryRun,
  });
  write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatRestore(report, opts.dryRun));
  return report.ok ? 0 : 1;
}

export const RESTORE_HELP = `portmap restore [--json] [--data-dir DIR] [--cni-cache-dir DIR] [--no-adopt] [--force] [--dry-run]
  Re-creates the hostPort rules of every live pod from portmap's records (DIR defaults to
  ${DEFAULT_DATA_DIR}; use the conflists' "dataDir" if they set one), in one transaction per backend
  and family, under the same lock as CNI calls. Only what is damaged is rewritten (--force: every
  attachment). Records of pods that are gone are reported and removed. Attachments the runtime's
  libcni cache (--cni-cache-dir, default ${DEFAULT_CNI_CACHE_DIR}) lists with a chained portmap and
  port mappings but without a record (pods started under the reference plugin) are adopted
  (--no-adopt: not). --dry-run changes nothing. Exit 0 when everything live was restored or intact.

portmap watch [--data-dir DIR] [--cni-cache-dir DIR] [--no-adopt] [--legacy-interval SECONDS]
  Runs until SIGTERM: follows netfilter changes (nft monitor) and restores, as portmap restore does,
  within a second after our rules vanish; the legacy iptables flavour is checked every SECONDS
  (default 2). Logs each restore to stderr (PORTMAP_LOG_FILE also to a file). See
  contrib/systemd/portmap-watch.service.
`;

export type RestoreArgs = (RestoreCliOptions & { legacyInterval: number; help: boolean }) | { bad: string };

/** Options of `restore` and `watch` (pure). */
export function parseRestoreArgs(args: readonly string[]): RestoreArgs {
  const o = { ...defaultRestoreOptions(), legacyInterval: 2, help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const [name, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = (): string | undefined => inline ?? args[++i];
    if (name === '--json' || name === '-j') o.json = true;
    else if (name === '--help' || name === '-h') o.help = true;
    else if (name === '--no-adopt') o.adopt = false;
    else if (name === '--force') o.force = true;
    else if (name === '--dry-run') o.dryRun = true;
    else if (name === '--data-dir' || name === '--cni-cache-dir') {
      const v = value();
      if (!v || !v.startsWith('/')) return { bad: `${name} needs an absolute directory` };
      if (name === '--data-dir') o.dataDir = v;
      else o.cacheDir = v;
    } else if (name === '--legacy-interval') {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0.1) return { bad: `${name} needs a number of seconds (at least 0.1)` };
      o.legacyInterval = v;
    } else return { bad: `unknown option ${JSON.stringify(a)}` };
  }
  return o;
}

/** `portmap restore ...` and `portmap watch ...` from the command line. */
export async function runRestoreCommand(cmd: 'restore' | 'watch', args: readonly string[], write: (s: string) => void, warn: (s: string) => void): Promise<number> {
  const o = parseRestoreArgs(args);
  const early = usageExit(cmd, 'bad' in o ? { error: o.bad } : o, RESTORE_HELP, write, warn);
  if (early !== undefined || 'bad' in o) return early ?? 2;
  if (cmd === 'restore') return runRestore(o, write);
  const { runWatch } = await import('./watch.js');
  return runWatch({ dataDir: o.dataDir, cacheDir: o.cacheDir, adopt: o.adopt, legacyInterval: o.legacyInterval, safetyInterval: 60 });
}
