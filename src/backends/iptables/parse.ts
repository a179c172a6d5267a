/**
 * Pure reading of `iptables -t nat -S <chain>` output, and a comparison of rules that ignores how
 * iptables prints them back (`-p tcp -m tcp --dport`, `127.0.0.1/32`, `--dports`, option order).
 * Nothing here runs a process.
 */
import { ipFamily, parseCidr } from '../../net/ip.js';
import type { Args, Rule } from './render.js';

/** Splits one line into words, honouring double quotes and backslash escapes (iptables-save quoting). */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      cur += text[++i];
      inWord = true;
    } else if (quoted) {
      if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

/** The `-A` rules of `-S` (or iptables-save) output, in order. `-N`/`-P` lines and others are skipped. */
export function parseRules(text: string): Rule[] {
  const out: Rule[] = [];
  for (const raw of text.split('\n')) {
    const words = tokenize(raw.trim());
    if (words[0] !== '-A' || words.length < 2) continue;
    out.push({ chain: words[1]!, args: words.slice(2) });
  }
  return out;
}

const OPTION_ALIASES: Record<string, string> = {
  '--source': '-s', '--src': '-s', '--destination': '-d', '--dst': '-d', '--protocol': '-p', '--jump': '-j', '--goto': '-g',
  '--match': '-m', '--in-interface': '-i', '--out-interface': '-o', '--destination-port': '--dport',
  '--destination-ports': '--dports', '--source-port': '--sport', '--source-ports': '--sports',
};

function normAddress(value: string): string {
  const withLen = value.includes('/') ? value : `${value}/${ipFamily(value) === 6 ? 128 : 32}`;
  try {
    const c = parseCidr(withLen);
    return `${c.network}/${c.prefixLength}`;
  } catch {
    return value;
  }
}

/**
 * A canonical form of a rule: options with their values, sorted, negations kept with their option;
 * implicit protocol matches (`-m tcp` after `-p tcp`) and match-all addresses dropped.
 */
export function canonical(args: Args): string {
  const parts: string[] = [];
  let protocol: string | undefined;
  for (let i = 0; i < args.length; i++) {
    let neg = '';
    let opt = args[i]!;
    if (opt === '!') {
      neg = '!';
      opt = args[++i] ?? '';
    }
    opt = OPTION_ALIASES[opt] ?? opt;
    if (!opt.startsWith('-')) {
      parts.push(`${neg}${opt}`);
      continue;
    }
    const next = args[i + 1];
    const takesValue = next !== undefined && !(next.startsWith('-') && next.length > 1 && !/^-\d/.test(next)) && next !== '!';
    let value = takesValue ? args[++i]! : '';
    if (opt === '-p') protocol = value = value.toLowerCase();
    if (opt === '-m' && value === protocol) continue;
    if (opt === '-s' || opt === '-d') {
      value = normAddress(value);
      if (!neg && (value === '0.0.0.0/0' || value === '::/0')) continue;
    }
    parts.push(`${neg}${opt}=${value}`);
  }
  return parts.sort().join(' ');
}

export const sameRule = (a: Args, b: Args): boolean => canonical(a) === canonical(b);

/** The value of an option in a rule (first occurrence), e.g. valueOf(args, '--comment'). */
export function valueOf(args: Args, ...options: string[]): string | undefined {
  for (let i = 0; i < args.length - 1; i++) if (options.includes(args[i]!)) return args[i + 1];
  return undefined;
}

/** Every spelling of an option: its short form and the long ones OPTION_ALIASES maps to it. */
const spellings = (option: string): string[] =>
  [option, ...Object.keys(OPTION_ALIASES).filter((long) => OPTION_ALIASES[long] === option)];

/**
 * The value of a match in any spelling (`-p` or `--protocol`, `--dport` or `--destination-port`), first
 * occurrence; negated matches (`! -d X`) are skipped. For reading rules that iptables-save printed.
 */
export function matchValue(args: Args, option: string): string | undefined {
  const names = spellings(option);
  for (let i = 0; i < args.length - 1; i++) {
    if (names.includes(args[i]!) && args[i - 1] !== '!') return args[i + 1];
  }
  return undefined;
}

/** An entry rule's identity without its conditions: protocol, ports, target and comment. */
export function entryKey(args: Args): string {
  const ports = valueOf(args, '--dports', '--destination-ports') ?? '';
  return [valueOf(args, '-p', '--protocol') ?? '', ports, valueOf(args, '-j', '--jump') ?? '', valueOf(args, '--comment') ?? ''].join(' ');
}

