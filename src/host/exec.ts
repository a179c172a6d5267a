import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';

/** Debian package that provides each binary we run, for error messages that say how to fix things. */
const PACKAGE_OF: Record<string, string> = {
  nft: 'nftables',
  iptables: 'iptables',
  'iptables-restore': 'iptables',
  'iptables-save': 'iptables',
  'ip6tables-restore': 'iptables',
  'ip6tables-save': 'iptables',
  'iptables-legacy-save': 'iptables',
  'iptables-nft-save': 'iptables',
  conntrack: 'conntrack',
  ip: 'iproute2',
  ss: 'iproute2',
};

export const DEFAULT_TIMEOUT_MS = 30_000;

/**
 * Where root's tools live (nft, iptables, conntrack, ip...). A runtime or `sudo` may run us with a PATH
 * without them; the operator commands also look there after PATH (see setFallbackDirs).
 */
export const SBIN_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** Directories searched after PATH; none unless a caller (the operator CLI) sets them. */
let fallbackDirs: readonly string[] = [];

/** Makes `onPath`, `locate` and `run` also search these directories, after PATH (process-wide). */
export function setFallbackDirs(dirs: readonly string[]): void {
  fallbackDirs = [...dirs];
}

const executableIn = (dir: string, program: string): string | undefined => {
  if (!dir) return undefined;
  const file = join(dir, program);
  try {
    accessSync(file, constants.X_OK);
    return file;
  } catch {
    return undefined;
  }
};

/** Where a program is: the first PATH directory holding it (onPath), else the first fallback directory. */
export function locate(
  program: string,
  path = process.env.PATH ?? '',
  fallback: readonly string[] = fallbackDirs,
): { file: string; onPath: boolean } | undefined {
  for (const dir of path.split(delimiter)) {
    const file = executableIn(dir, program);
    if (file) return { file, onPath: true };
  }
  for (const dir of fallback) {
    const file = executableIn(dir, program);
    if (file) return { file, onPath: false };
  }
  return undefined;
}

/**
 * Why a program could not be found, and the fix: installed in a root tool directory the PATH lacks (a
 * runtime started with a short PATH), or not installed at all.
 */
export function missingMessage(command: string, pkg = PACKAGE_OF[command]): string {
  const where = `${command} not found on PATH${fallbackDirs.length > 0 ? ` or in ${fallbackDirs.join(', ')}` : ''}`;
  const elsewhere = command.includes('/') ? undefined : locate(command, '', SBIN_DIRS);
  if (elsewhere && fallbackDirs.length === 0) {
    return `${where}: it is in ${dirname(elsewhere.file)}; add ${dirname(elsewhere.file)} to the runtime's PATH`;
  }
  return `${where}${pkg ? `: install it (Debian/Ubuntu: apt-get install ${pkg})` : ''}`;
}

/** Whether a program can be run: on PATH, or in the fallback directories (no process is spawned). */
export function onPath(program: string, path = process.env.PATH ?? '', fallback: readonly string[] = fallbackDirs): boolean {
  return locate(program, path, fallback) !== undefined;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Exit codes that are not failures (0 always is). */
  okCodes?: readonly number[];
  env?: NodeJS.ProcessEnv;
  /**
   * Resolve (as a success) as soon as the output so far satisfies this, and leave the process to finish
   * on its own: for work that is done before the process's last steps (see the nftables backend's DEL).
   */
  settledBy?: (stdout: string) => boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** A command that could not run, timed out, or failed; the message says which and how to fix it. */
export class CommandError extends Error {
  constructor(
    message: string,
    readonly command: string,
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
    readonly kind: 'missing' | 'timeout' | 'failed',
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

const firstLines = (text: string, n = 6): string => text.trim().split('\n').slice(0, n).join('\n');

/**
 * What a failed command said, in one line and without its `Error:` labels, for debug lines about a
 * failure the caller expected and handles (nft's `internal:0:0-0: Error: No such file or directory`,
 * once per command of the transaction, becomes `No such file or directory`). Repeated lines count once.
 */
export function failureReason(err: unknown): string {
  if (!(err instanceof CommandError) || err.kind !== 'failed' || err.stderr.trim() === '') return (err as Error)?.message ?? String(err);
  const seen = new Set<string>();
  for (const raw of err.stderr.split('\n')) {
    const line = raw
      .replace(/^.*?\bError:\s*/, '')
      .replace(/^Error occurred at line:\s*(\d+)/, 'at line $1')
      .replace(/^Try `[^']*' or '[^']*' for more information\.?$/, '')
      .trim();
    if (line) seen.add(line);
  }
  return [...seen].slice(0, 4).join('; ') || `exit ${err.code}`;
}

/** The command line for a message: a long argument (an nft JSON document) is shortened, so the reason stays readable. */
const commandLine = (command: string, args: readonly string[]): string =>
  [command, ...args.map((a) => (a.length > 80 ? `${a.slice(0, 40)}...(${a.length} bytes)` : a))].join(' ');

/** How the backends and verbs run a program: `run` below, or a recording fake in unit tests. */
export type Runner = (command: string, args: readonly string[], opts?: RunOptions) => Promise<RunResult>;

/**
 * Runs a program directly (never through a shell) with a timeout, optional stdin, captured output.
 * A bare name not found on PATH is looked for in the fallback directories (setFallbackDirs), if any.
 */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (fallbackDirs.length === 0 || command.includes('/')) return spawnOnce(command, command, args, opts);
  return spawnOnce(command, command, args, opts).catch((err: unknown) => {
    if (!(err instanceof CommandError) || err.kind !== 'missing') throw err;
    const found = locate(command, '', fallbackDirs);
    if (!found) throw err;
    return spawnOnce(found.file, command, args, opts);
  });
}

/** One spawn of `file`; messages name the program as `command`. */
function spawnOnce(file: string, command: string, args: readonly string[], opts: RunOptions): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      // Without input, stdin is /dev/null: no pipe to create and write to.
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    const [childOut, childErr] = [child.stdout!, child.stderr!];
    let stdout = '';
    const err: Buffer[] = [];
    let settled = false;
    childOut.setEncoding('utf8');
    childOut.on('data', (text: string) => {
      stdout += text;
      if (settled || !opts.settledBy?.(stdout)) return;
      settled = true;
      // Our process may exit before this child: nothing of ours waits for it or reads from it any more.
      child.unref();
      childOut.destroy();
      childErr.destroy();
      resolve({ stdout, stderr: Buffer.concat(err).toString('utf8'), code: 0 });
    });
    childErr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        reject(new CommandError(missingMessage(command), command, args, null, '', 'missing'));
      } else {
        reject(new CommandError(`could not run ${command}: ${e.message}`, command, args, null, '', 'failed'));
      }
    });
    child.on('close', (code, signal) => {
      if (settled) return;
      const stderr = Buffer.concat(err).toString('utf8');
      if (signal === 'SIGKILL' && code === null) {
        reject(new CommandError(`${commandLine(command, args)} timed out after ${timeoutMs} ms and was killed`, command, args, null, stderr, 'timeout'));
        return;
      }
      const status = code ?? 1;
      if (status === 0 || opts.okCodes?.includes(status)) {
        resolve({ stdout, stderr, code: status });
        return;
      }
      reject(
        new CommandError(
          `${commandLine(command, args)} failed (exit ${status}${signal ? `, ${signal}` : ''}): ${firstLines(stderr) || 'no error output'}`,
          command, args, status, stderr, 'failed',
        ),
      );
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {
        // The child may exit before reading all input; its exit status tells what happened.
      });
      child.stdin!.end(opts.input);
    }
  });
}
