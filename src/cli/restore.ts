/** `portmap restore`: re-creates the hostPort rules of every live pod from the records (and the libcni cache). */
import { DEFAULT_CNI_CACHE_DIR } from '../cni/cache.js';
import { DEFAULT_DATA_DIR } from '../plugin/records.js';
import { type RestoreReport, restoreAll } from '../plugin/restore.js';
import { EXIT_UNREADABLE, isPermissionText } from './completeness.js';
import { commandLine, table } from './format.js';
import { EXIT_USAGE, usageExit } from './usage.js';

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

/** Whether an error (thrown, or a backend's) is for lack of privileges. */
const denied = (e: { code?: unknown; message: string }): boolean =>
  e.code === 'EACCES' || e.code === 'EPERM' || isPermissionText(e.message);

/**
 * Exit status 0 when every live attachment was restored or intact, 1 when some could not be, 4 when it
 * was not permitted to read or write what it needs (not root). `argv`: how it was run, for the hint.
 */
export async function runRestore(
  opts: RestoreCliOptions,
  write: (s: string) => void,
  warn: (s: string) => void = (s) => process.stderr.write(s),
  argv: readonly string[] = ['portmap', 'restore'],
): Promise<number> {
  const asRoot = `  run it as root:\n    sudo ${commandLine(argv)}\n`;
  let report: RestoreReport;
  try {
    report = await restoreAll({
      dataDir: opts.dataDir,
      ...(opts.adopt ? { cacheDir: opts.cacheDir } : {}),
      force: opts.force,
      dryRun: opts.dryRun,
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (opts.json) write(`${JSON.stringify({ ok: false, error: err.message })}\n`);
    if (!denied(err)) {
      warn(`portmap restore: ${err.message}\n`);
      return 1;
    }
    warn(`portmap restore: nothing was restored: ${err.message}\n${asRoot}`);
    return EXIT_UNREADABLE;
  }
  write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatRestore(report, opts.dryRun));
  if (report.ok) return 0;
  if (report.backends.some((b) => b.error !== undefined && denied({ message: b.error }))) {
    warn(`portmap restore: a backend was not permitted to read or write the rules\n${asRoot}`);
    return EXIT_UNREADABLE;
  }
  return 1;
}

export const RESTORE_HELP = `Usage: portmap restore [--json] [--data-dir DIR] [--cni-cache-dir DIR] [--no-adopt] [--force]
                       [--dry-run]

Re-creates the hostPort rules of every live pod from portmap's records, e.g. after a firewall reload
(nftables.service, firewall-cmd --reload, iptables -t nat -F) flushed them: in one transaction per
backend and family, under the same lock as CNI calls. Only what is damaged is rewritten. Records of
pods that are gone are reported and removed. Attachments the runtime's libcni cache lists with a
chained portmap and port mappings but without a record (pods started under the reference plugin) are
adopted. Run it as root in the node's network namespace.

Options:
  --json, -j            print the report as JSON ({"restored", "intact", "skipped", "backends",
                        "ok"})
  --data-dir DIR        portmap's records (default ${DEFAULT_DATA_DIR}; the conflists'
                        "dataDir" if they set one)
  --cni-cache-dir DIR   the runtime's libcni cache, for adoption (default ${DEFAULT_CNI_CACHE_DIR})
  --no-adopt            do not adopt attachments from the libcni cache
  --force               rewrite every live attachment's rules, damaged or not
  --dry-run             say what would be restored, change nothing
  --help, -h            this text

Examples:
  /opt/cni/bin/portmap restore --dry-run
  /opt/cni/bin/portmap restore

Exit status:
  0  every live attachment was restored or found intact (or there was none)
  1  some could not be restored (a backend failed: the report says which and why)
  2  usage error (an unknown option, a missing or relative directory)
  4  not permitted to read or write the records or the rules (not root): nothing was restored
`;

export const WATCH_HELP = `Usage: portmap watch [--data-dir DIR] [--cni-cache-dir DIR] [--no-adopt] [--legacy-interval SECONDS]

Runs until SIGTERM or SIGINT: follows netfilter changes (nft monitor) and, as portmap restore does,
restores within a second after our rules vanish; the legacy iptables flavour (which sends no events)
is checked every SECONDS, and everything every 60 s. Logs each restore to stderr (PORTMAP_LOG_FILE:
also to a file). Run it as root in the node's network namespace, e.g. as
contrib/systemd/portmap-watch.service.

Options:
  --data-dir DIR               portmap's records (default ${DEFAULT_DATA_DIR})
  --cni-cache-dir DIR          the runtime's libcni cache, for adoption (default
                               ${DEFAULT_CNI_CACHE_DIR})
  --no-adopt                   do not adopt attachments from the libcni cache
  --legacy-interval SECONDS    how often to check the legacy iptables flavour (default 2, at
                               least 0.1)
  --help, -h                   this text

Examples:
  /opt/cni/bin/portmap watch
  PORTMAP_LOG=debug /opt/cni/bin/portmap watch --legacy-interval 5

Exit status:
  0  stopped by SIGTERM or SIGINT
  2  usage error (an unknown option, a bad value)
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
export async function runRestoreCommand(
  cmd: 'restore' | 'watch',
  args: readonly string[],
  write: (s: string) => void,
  warn: (s: string) => void,
  self = 'portmap',
): Promise<number> {
  const o = parseRestoreArgs(args);
  const help = cmd === 'restore' ? RESTORE_HELP : WATCH_HELP;
  const early = usageExit(cmd, 'bad' in o ? { error: o.bad } : o, help, write, warn);
  if (early !== undefined || 'bad' in o) return early ?? EXIT_USAGE;
  if (cmd === 'restore') return runRestore(o, write, warn, [self, cmd, ...args]);
  if (o.json || o.force || o.dryRun) {
    warn(`portmap watch: ${o.json ? '--json' : o.force ? '--force' : '--dry-run'} is a restore option\n`);
    return EXIT_USAGE;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    warn(`portmap watch: warning: not running as root: its restores will fail (run it as root: sudo ${commandLine([self, cmd, ...args])})\n`);
  }
  const { runWatch } = await import('./watch.js');
  return runWatch({ dataDir: o.dataDir, cacheDir: o.cacheDir, adopt: o.adopt, legacyInterval: o.legacyInterval, safetyInterval: 60 });
}
