/** What every operator command shares: its exit statuses, and the start (a usage error, or --help). */

/** A usage error: an unknown option, a missing or bad value. */
export const EXIT_USAGE = 2;

/** The start every operator command shares: a usage error (exit 2, with a hint to --help) or --help (exit 0). */
export function usageExit(
  cmd: string,
  parsed: { error: string } | { help: boolean },
  help: string,
  out: (s: string) => void,
  err: (s: string) => void,
): number | undefined {
  if ('error' in parsed) {
    const usage = help.split('\n').find((l) => l.startsWith('Usage: '));
    err(`portmap ${cmd}: ${parsed.error}\n${usage ? `${usage}\n` : ''}Run "portmap ${cmd} --help" for every option, examples and the exit statuses.\n`);
    return EXIT_USAGE;
  }
  if (parsed.help) {
    out(help);
    return 0;
  }
  return undefined;
}
