/** Plain text for the operator commands: lines of tool output in, tables and paragraphs out (pure). */

/** The non-empty lines of a tool's output, trimmed. */
export const lines = (text: string | undefined): string[] =>
  (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

/** Left-aligned columns separated by two spaces; the header is printed as given. */
export function table(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** Short container id for tables (full ids go to --json). */
export const shortId = (id: string | undefined, n = 16): string =>
  id === undefined ? '-' : id.length > n ? `${id.slice(0, n - 1)}…` : id;

/** Wraps a paragraph at `width`: the first line keeps the text's own indentation, the others get `indent`. */
export function wrap(text: string, width = 100, indent = '    '): string {
  const out: string[] = [];
  let line = /^\s*/.exec(text)![0];
  for (const word of text.trim().split(/\s+/)) {
    if (line.trim() && line.length + 1 + word.length > width) {
      out.push(line);
      line = indent + word;
    } else line = line.trim() ? `${line} ${word}` : line + word;
  }
  if (line.trim()) out.push(line);
  return out.join('\n');
}

/** One shell word: as is when it needs no quoting, else in single quotes (pasteable into sh and bash). */
export function shellQuote(word: string): string {
  if (word !== '' && /^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A command line from its words, each quoted as needed. */
export const commandLine = (words: readonly string[]): string => words.map(shellQuote).join(' ');
