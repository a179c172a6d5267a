import { spawn } from 'node:child_process';

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

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** Exit codes that are not failures (0 always is). */
  okCodes?: readonly number[];
  env?: NodeJS.ProcessEnv;
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

/** The command line for a message: a long argument (an nft JSON document) is shortened, so the reason stays readable. */
const commandLine = (command: string, args: readonly string[]): string =>
  [command, ...args.map((a) => (a.length > 80 ? `${a.slice(0, 40)}...(${a.length} bytes)` : a))].join(' ');

/** Runs a program directly (never through a shell) with a timeout, optional stdin, captured output. */
export function run(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') {
        const pkg = PACKAGE_OF[command];
        reject(
          new CommandError(
            `${command} not found on PATH${pkg ? `: install it (Debian/Ubuntu: apt-get install ${pkg})` : ''}`,
            command, args, null, '', 'missing',
          ),
        );
      } else {
        reject(new CommandError(`could not run ${command}: ${e.message}`, command, args, null, '', 'failed'));
      }
    });
    child.on('close', (code, signal) => {
      const stdout = Buffer.concat(out).toString('utf8');
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
    child.stdin.on('error', () => {
      // The child may exit before reading all input; its exit status tells what happened.
    });
    child.stdin.end(opts.input ?? '');
  });
}
