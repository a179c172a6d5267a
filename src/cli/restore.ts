/** `portmap restore`: re-creates the hostPort rules of every live pod from the records (and the libcni cache). */
import { DEFAULT_CNI_CACHE_DIR } from '../cni/cache.js';
import { DEFAULT_DATA_DIR } from '../plugin/records.js';
import { type RestoreReport, restoreAll } from '../plugin/restore.js';
import { table } from './format.js';

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
