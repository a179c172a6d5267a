/**
 * A recording fake of host/exec's `run` for unit tests (knftables' fakeExec is the model): every call is
 * recorded (argv, stdin), and answered by the first canned reply whose matcher accepts it; an unmatched
 * call succeeds with empty output. A reply may fail the way `run` fails (a CommandError).
 */
import { CommandError, type RunOptions, type RunResult, type Runner } from '../../src/host/exec.js';

export interface RecordedCall {
  command: string;
  args: string[];
  input?: string;
}

export interface Reply {
  stdout?: string;
  stderr?: string;
  /** Non-zero: the call fails (unless opts.okCodes holds the code), as `run` does. */
  code?: number;
}

type Matcher = (call: RecordedCall) => boolean;

export class FakeRunner {
  readonly calls: RecordedCall[] = [];
  private readonly replies: Array<{ match: Matcher; reply: Reply | ((call: RecordedCall) => Reply); once: boolean }> = [];

  /** Answers matching calls with `reply` (every time, or only the next one with `once`). */
  on(match: Matcher, reply: Reply | ((call: RecordedCall) => Reply), once = false): this {
    this.replies.push({ match, reply, once });
    return this;
  }

  readonly run: Runner = async (command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> => {
    const call: RecordedCall = { command, args: [...args], ...(opts.input !== undefined ? { input: opts.input } : {}) };
    this.calls.push(call);
    const i = this.replies.findIndex((r) => r.match(call));
    const found = i >= 0 ? this.replies[i]! : undefined;
    if (found?.once) this.replies.splice(i, 1);
    const reply = typeof found?.reply === 'function' ? found.reply(call) : (found?.reply ?? {});
    const code = reply.code ?? 0;
    const result = { stdout: reply.stdout ?? '', stderr: reply.stderr ?? '', code };
    if (code !== 0 && !opts.okCodes?.includes(code)) {
      throw new CommandError(`${command} failed (exit ${code}): ${result.stderr}`, command, args, code, result.stderr, 'failed');
    }
    return result;
  };

  /** The nft JSON transactions sent (the document argument of `nft -j ...`), parsed. */
  nftTransactions(): Array<Array<Record<string, unknown>>> {
    return this.calls
      .filter((c) => c.command === 'nft' || (c.command === 'stdbuf' && c.args.includes('nft')))
      .map((c) => c.args[c.args.length - 1]!)
      .filter((a) => a.startsWith('{'))
      .map((a) => (JSON.parse(a) as { nftables: Array<Record<string, unknown>> }).nftables);
  }
}

/** Matches an nft call whose arguments include all of `words` (e.g. 'list', 'table'). */
export const nftWith = (...words: string[]): Matcher => (c) =>
  (c.command === 'nft' || (c.command === 'stdbuf' && c.args.includes('nft'))) && words.every((w) => c.args.includes(w));

/** Matches an nft transaction whose JSON document contains `text`. */
export const nftDocumentWith = (text: string): Matcher => (c) =>
  (c.command === 'nft' || c.command === 'stdbuf') && (c.args[c.args.length - 1] ?? '').startsWith('{') && c.args[c.args.length - 1]!.includes(text);
