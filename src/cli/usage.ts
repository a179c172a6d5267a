/** The start every operator command shares: a usage error (exit 2) or --help (exit 0). */
export function usageExit(
  cmd: string,
  parsed: { error: string } | { help: boolean },
  help: string,
  out: (s: string) => void,
  err: (s: string) => void,
): number | undefined {
  if ('error' in parsed) {
    err(`portmap ${cmd}: ${parsed.error}\n\n${help}`);
    return 2;
  }
  if (parsed.help) {
    out(help);
    return 0;
  }
  return undefined;
}
