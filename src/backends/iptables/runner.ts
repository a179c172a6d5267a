/**
 * The only code that runs iptables: one flavour's binaries for one family, started by a Runner
 * (host/exec's `run`, or a recording fake in unit tests). Changes are `iptables-restore --noflush`
 * documents (one transaction each); reads list one chain at a time.
 */
import { CommandError, type Runner, run } from '../../host/exec.js';
import { log } from '../../host/log.js';
import type { Family } from '../../net/ip.js';
import { type Flavour, type FlavourName, IPT_TIMEOUT_MS, LOCK_WAIT, binariesFor } from './flavour.js';
import { parseRules } from './parse.js';
import type { Args } from './render.js';

export const FAMILIES: readonly Family[] = [4, 6];
export const familyLabel = (f: Family): string => (f === 4 ? 'IPv4' : 'IPv6');

export class IptablesRunner {
  constructor(
    readonly flavour: FlavourName | 'unknown',
    readonly family: Family,
    readonly iptables: string,
    readonly restoreBin: string,
    private readonly runner: Runner = run,
  ) {}

  static of(fl: Flavour, family: Family, name: FlavourName | 'unknown' = fl.name, runner: Runner = run): IptablesRunner {
    const bin = name === fl.name ? fl.bin : binariesFor(name, fl.path);
    return new IptablesRunner(name, family, bin.iptables[family], bin.restore[family], runner);
  }

  get where(): string {
    return `${familyLabel(this.family)} nat table, iptables flavour ${this.flavour} (${this.restoreBin})`;
  }

  async restore(doc: string, test = false): Promise<void> {
    log.debug(`${this.restoreBin} --noflush${test ? ' --test' : ''}:\n${doc}`);
    await this.runner(this.restoreBin, ['--noflush', ...(test ? ['--test'] : []), LOCK_WAIT], { input: doc, timeoutMs: IPT_TIMEOUT_MS });
  }

  /** The rules of one chain (nat unless told); undefined when the chain does not exist. */
  async list(chain: string, table = 'nat'): Promise<Args[] | undefined> {
    const args = [LOCK_WAIT, '-t', table, '-S', chain];
    const res = await this.runner(this.iptables, args, { timeoutMs: IPT_TIMEOUT_MS, okCodes: [1] });
    if (res.code === 1) {
      if (/No chain|does not exist|incompatible|doesn't exist/i.test(res.stderr) || res.stderr.trim() === '') return undefined;
      throw new CommandError(`${this.iptables} -t ${table} -S ${chain} failed: ${res.stderr.trim()}`, this.iptables, args, 1, res.stderr, 'failed');
    }
    return parseRules(res.stdout).filter((r) => r.chain === chain).map((r) => r.args);
  }

  /** A whole table (`iptables-save -t <table>`): one process, for restores of many attachments. */
  async save(table = 'nat'): Promise<string> {
    return (await this.runner(`${this.iptables}-save`, ['-t', table], { timeoutMs: IPT_TIMEOUT_MS })).stdout;
  }

  async listMany(chains: readonly string[]): Promise<Map<string, Args[] | undefined>> {
    const lists = await Promise.all(chains.map((c) => this.list(c)));
    return new Map(chains.map((c, i) => [c, lists[i]]));
  }

  /** Whether the nat table can be used at all (STATUS): an empty test restore and one listed rule. */
  async probe(): Promise<void> {
    await this.restore('*nat\nCOMMIT\n', true);
    await this.runner(this.iptables, [LOCK_WAIT, '-t', 'nat', '-S', 'OUTPUT', '1'], { timeoutMs: IPT_TIMEOUT_MS });
  }
}
