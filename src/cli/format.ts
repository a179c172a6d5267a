/** Plain-text table printing for the operator commands (pure). */

/** Left-aligned columns separated by two spaces; the header is printed as given. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** addr:port with brackets for IPv6. */
export const addrPort = (addr: string, port: number | string): string => (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`);

/** Short container id for tables (full ids go to --json). */
export const shortId = (id: string | undefined, n = 16): string => (id === undefined ? '-' : id.length > n ? `${id.slice(0, n - 1)}…` : id);

/** Indents continuation lines of a wrapped paragraph. */
export function wrap(text: string, width = 100, indent = '    '): string {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = indent + word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(line);
  return out.join('\n');
}
