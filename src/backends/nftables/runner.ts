/**
 * The only code that runs nft. One call is one transaction (all commands or none); reads of our table
 * are parsed and validated (parse.ts). The process itself is started by a Runner (host/exec's `run`, or
 * a recording fake in unit tests).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CniError, ErrorCode } from '../../cni/errors.js';
import { CommandError, type Runner, onPath, run } from '../../host/exec.js';
import { type Command, FAMILY, TABLE, document } from './json.js';
import { type TableState, parseTable } from './parse.js';

const NFT_TIMEOUT_MS = 20_000;
/**
 * A transaction of many interval-map elements takes the kernel time that grows faster than linearly
 * (the pipapo set rebuilds its lookup tables per element: 16,384 single ports ~3 s to add, more to
 * delete, on a 2-core VM). Ranges are one element; thousands of remapped ports are not: their
 * transactions get more time (1 ms per command).
 */
const timeoutFor = (commands: number): number => NFT_TIMEOUT_MS + commands;

/** Transactions up to this many commands are answered at commit (answeredAtCommit). */
const ECHO_MAX_COMMANDS = 1000;

/** Linux caps one argument at 128 KiB (MAX_ARG_STRLEN); larger documents go through a file. */
const MAX_ARG_BYTES = 100_000;

export interface ApplyOptions {
  /** `nft --check`: validate only. */
  check?: boolean;
  /** A transaction of deletes only: answered at commit, see answeredAtCommit. */
  deletesOnly?: boolean;
}

/**
 * A transaction that deletes commits when nft sends it, but nft then closes its netlink socket, and the
 * kernel makes that close wait for an RCU grace period (10-15 ms here) before it frees what was deleted.
 * With `--echo`, nft prints the committed commands before that close (and prints nothing when the
 * transaction fails); with its output unbuffered (coreutils' stdbuf -o0) the echo reaches us at commit,
 * and the call is answered then: nft finishes on its own, with nothing left to change in the kernel.
 * Only for transactions of deletes: with an `add` (or a `list`) in it, --echo makes nft read the whole
 * ruleset first. Without stdbuf, the call waits for nft to exit, as every other transaction does.
 */
function answeredAtCommit(): { prefix: string[]; flags: string[]; settledBy: (out: string) => boolean } | undefined {
  if (!onPath('stdbuf')) return undefined;
  return {
    prefix: ['stdbuf', '-o0'],
    flags: ['--echo'],
    settledBy: jsonDocumentEnded(),
  };
}

/**
 * Whether the output so far holds one whole JSON document, scanning each chunk once: parsing all of it
 * at every chunk that happens to end with `}` cost O(n^2) (the echo of a DEL of 16,384 remapped ports
 * is megabytes: 25 s of CPU). Tracks strings (braces inside comments) and nesting; parses once at the end.
 */
export function jsonDocumentEnded(): (out: string) => boolean {
  let scanned = 0;
  let depth = 0;
  let started = false;
  let inString = false;
  let escaped = false;
  return (out) => {
    for (; scanned < out.length; scanned++) {
      const c = out.charCodeAt(scanned);
      if (inString) {
        if (escaped) escaped = false;
        else if (c === 0x5c) escaped = true;
        else if (c === 0x22) inString = false;
      } else if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) {
        depth++;
        started = true;
      } else if (c === 0x7d || c === 0x5d) {
        depth--;
        if (started && depth === 0) {
          scanned++;
          try {
            JSON.parse(out.slice(0, scanned));
            return true;
          } catch {
            return false; // not JSON after all: wait for nft to exit
          }
        }
      }
    }
    return false;
  };
}

/**
 * The kernel refuses what it does not have (a module missing or not built) with EOPNOTSUPP; so does
 * `add chain` for an existing base chain at another priority, which ADD handles (mismatchedBaseChains).
 */
function explainKernelError(err: unknown): unknown {
  if (err instanceof CommandError && /Operation not supported|Protocol not supported/.test(err.stderr)) {
    return new CniError(
      ErrorCode.PluginNotAvailable,
      `the kernel lacks an nftables feature this plugin needs: ${err.message}`,
      'load the modules (modprobe nf_tables nft_chain_nat nft_nat nft_fib_inet nft_ct nft_masq) or use "backend": "iptables"',
    );
  }
  return err;
}

export class NftRunner {
  constructor(private readonly runner: Runner = run) {}

  /**
   * Runs one nft transaction. The JSON document is passed as nft's argument, or as a private file when
   * large: nft cannot read `-f -` from the socket Node gives a child as stdin.
   */
  async apply(cmds: readonly Command[], opts: ApplyOptions = {}): Promise<void> {
    try {
      await this.applyDocument(cmds, opts);
    } catch (err) {
      throw explainKernelError(err);
    }
  }

  /** Reads our table (`terse`: without set and map elements); undefined when it does not exist. */
  async readTable(terse = false): Promise<TableState | undefined> {
    const args = ['-j', ...(terse ? ['--terse'] : []), 'list', 'table', FAMILY, TABLE];
    try {
      const { stdout } = await this.runner('nft', args, { timeoutMs: NFT_TIMEOUT_MS });
      return parseTable(stdout);
    } catch (err) {
      if (err instanceof CommandError && /No such file or directory/.test(err.stderr)) return undefined;
      throw explainKernelError(err);
    }
  }

  private async applyDocument(cmds: readonly Command[], opts: ApplyOptions): Promise<void> {
    if (cmds.length === 0) return;
    const doc = document(cmds);
    // A large DEL (thousands of remapped ports) waits for nft's exit: its unbuffered echo would be
    // megabytes in tiny writes, seconds of work on both sides to save one grace period (~10 ms).
    const early = opts.deletesOnly && cmds.length <= ECHO_MAX_COMMANDS ? answeredAtCommit() : undefined;
    const flags = [...(opts.check ? ['--check'] : []), ...(early?.flags ?? []), '-j'];
    const nft = (args: string[]) => {
      const [command, ...rest] = [...(early?.prefix ?? []), 'nft', ...args];
      const settled = early ? { settledBy: early.settledBy } : {};
      return this.runner(command!, rest, { timeoutMs: timeoutFor(cmds.length), ...settled });
    };
    if (Buffer.byteLength(doc) <= MAX_ARG_BYTES) {
      await nft([...flags, doc]);
      return;
    }
    // Synchronous file calls, so that no CNI call loads node:fs/promises (~1.5 ms) for this rare case.
    const dir = mkdtempSync(join(tmpdir(), 'cni-portmap-'));
    try {
      const file = join(dir, 'transaction.json');
      writeFileSync(file, doc, { mode: 0o600 });
      await nft([...flags, '-f', file]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}
