/** The options of `list` and `doctor` (pure): `--name VALUE`, `--name=VALUE`, flags, --help/-h. */

export interface OptionSpec {
  /** "--data-dir" */
  name: string;
  /** "-j" */
  short?: string;
  /** Takes a value; "dir": an absolute directory (a relative one is made absolute by the caller). */
  value?: 'dir';
}

export interface ParsedArgs {
  values: Map<string, string>;
  flags: Set<string>;
  help: boolean;
}

/** Parses `args` against `spec`; an unknown option, or a missing value, is an error. */
export function parseArgs(args: readonly string[], spec: readonly OptionSpec[]): ParsedArgs | { error: string } {
  const out: ParsedArgs = { values: new Map(), flags: new Set(), help: false };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--help' || a === '-h') {
      out.help = true;
      continue;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const opt = spec.find((o) => o.name === name || (o.short !== undefined && o.short === name));
    if (!opt) return { error: `unknown option ${JSON.stringify(a)}` };
    if (!opt.value) {
      if (eq > 0) return { error: `${opt.name} takes no value` };
      out.flags.add(opt.name);
      continue;
    }
    const v = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined || v === '' || v.includes('\0')) return { error: `${opt.name} needs a directory` };
    out.values.set(opt.name, v);
  }
  return out;
}
