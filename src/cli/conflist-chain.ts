/**
 * Pure editing of CNI network configuration files for `portmap install --chain`: which file the runtime
 * loads, how portmap is appended to its plugin list (a text insertion that leaves every other byte as
 * it was), and the diff shown by --dry-run. Nothing here touches the file system.
 *
 * Which file: libcni's ConfFiles(dir, [".conf", ".conflist", ".json"]) sorted lexically (Go's
 * sort.Strings: byte order), the first one. containerd and CRI-O load a ".conflist" as a list, and a
 * ".conf"/".json" as ONE plugin: a ".conf" holding a `plugins` list has no `type` and is skipped with
 * only a log line (a silent no-op), so it is reported here rather than edited.
 */

import { isObject } from '../cni/json.js';

export const CONF_EXTENSIONS = ['.conf', '.conflist', '.json'] as const;

const byteOrder = (a: string, b: string): number => (Buffer.compare(Buffer.from(a), Buffer.from(b)));

/** The configuration files of a directory listing, in the order runtimes consider them. */
export function confFiles(names: readonly string[]): string[] {
  return names.filter((n) => CONF_EXTENSIONS.some((e) => n.endsWith(e)) && !n.startsWith('.')).sort(byteOrder);
}

/** The file the runtime loads: the first of confFiles (undefined: none). */
export const loadedConfFile = (names: readonly string[]): string | undefined => confFiles(names)[0];

export interface ChainOptions {
  /** Kubernetes' Service-safe settings: afterServices, and these serviceCIDRs (may be empty). */
  kubernetes?: { serviceCIDRs: readonly string[] };
}

/** The plugin object appended to the list. */
export function portmapPlugin(opts: ChainOptions = {}): Record<string, unknown> {
  return {
    type: 'portmap',
    capabilities: { portMappings: true },
    ...(opts.kubernetes ? { afterServices: true, serviceCIDRs: [...opts.kubernetes.serviceCIDRs] } : {}),
  };
}

export type ChainResult =
  | { kind: 'unchanged'; reason: string; warnings: string[] }
  | { kind: 'changed'; text: string; file: string; removeFile?: string; warnings: string[] }
  | { kind: 'error'; reason: string };

type Json = Record<string, unknown>;

/** Warnings about a portmap entry that is already in the list. */
function existingWarnings(entry: Json, opts: ChainOptions): string[] {
  const out: string[] = [];
  const caps = entry.capabilities;
  if (!isObject(caps) || caps.portMappings !== true) {
    out.push('the portmap entry has no "capabilities": {"portMappings": true}: the runtime passes it no ports (left as it is)');
  }
  if (opts.kubernetes && entry.afterServices !== true) {
    out.push('the portmap entry has no "afterServices": true (left as it is: edit it by hand)');
  }
  return out;
}

/**
 * Appends portmap to the configuration `text` of file `file` (a name, no directory), unless a plugin of
 * type portmap is already listed. A ".conflist" gets the object inserted before its list's closing
 * bracket; a ".conf"/".json" with one plugin becomes a ".conflist" of the same base name holding that
 * plugin (its text kept) and portmap, and the old file is to be removed (removeFile) so that the new one
 * is the first again.
 */
export function chainPortmap(file: string, text: string, opts: ChainOptions = {}): ChainResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { kind: 'error', reason: `${file} is not valid JSON (${(err as Error).message})` };
  }
  if (!isObject(doc)) return { kind: 'error', reason: `${file} does not hold a JSON object` };
  const isList = file.endsWith('.conflist');
  const plugin = portmapPlugin(opts);
  if (isList) {
    const plugins = doc.plugins;
    if (!Array.isArray(plugins) || plugins.length === 0) return { kind: 'error', reason: `${file} has no "plugins" list` };
    const existing = plugins.find((p) => isObject(p) && p.type === 'portmap');
    if (existing) return { kind: 'unchanged', reason: `${file} already chains portmap`, warnings: existingWarnings(existing as Json, opts) };
    const edited = insertIntoPlugins(text, plugin);
    if (edited === undefined) return { kind: 'error', reason: `could not find the "plugins" list of ${file}` };
    const expected = { ...doc, plugins: [...plugins, plugin] };
    if (!sameJson(JSON.parse(edited), expected)) return { kind: 'error', reason: `editing ${file} would change more than its plugin list` };
    return { kind: 'changed', text: edited, file, warnings: [] };
  }
  if (Array.isArray(doc.plugins)) {
    return {
      kind: 'error',
      reason: `${file} holds a "plugins" list, but runtimes read a ${extOf(file)} file as one plugin and skip this one ` +
        '(a silent no-op: only a log line says "network type not found"); rename it to .conflist, then run this again',
    };
  }
  if (typeof doc.type !== 'string') return { kind: 'error', reason: `${file} has neither "type" nor "plugins"` };
  if (doc.type === 'portmap') return { kind: 'error', reason: `${file} configures portmap alone: it must be chained after a main plugin` };
  const indent = indentUnit(text);
  const head: Json = {};
  if (doc.cniVersion !== undefined) head.cniVersion = doc.cniVersion;
  if (doc.name !== undefined) head.name = doc.name;
  const headText = Object.entries(head).map(([k, v]) => `${indent}${JSON.stringify(k)}: ${JSON.stringify(v)},\n`).join('');
  const own = text.trim().split('\n').map((l, i) => (i === 0 ? l : `${indent}${indent}${l}`)).join('\n');
  const next = `{\n${headText}${indent}"plugins": [\n${indent}${indent}${own},\n${render(plugin, indent, 2)}\n${indent}]\n}\n`;
  const base = file.slice(0, file.length - extOf(file).length);
  const target = `${base}.conflist`;
  const warnings = [`${file} becomes ${target} (a list of ${doc.type} and portmap); ${file} is removed`];
  return { kind: 'changed', text: next, file: target, removeFile: file, warnings };
}

const extOf = (file: string): string => CONF_EXTENSIONS.find((e) => file.endsWith(e)) ?? '';

/** The indentation unit of a JSON text (the first indented line's), two spaces by default. */
export function indentUnit(text: string): string {
  const m = /\n([ \t]+)\S/.exec(text);
  return m ? m[1]! : '  ';
}

/** A value as indented JSON at `depth` units (the first line indented too). */
function render(value: unknown, unit: string, depth: number): string {
  const pad = unit.repeat(depth);
  return JSON.stringify(value, null, unit).split('\n').map((l) => pad + l).join('\n');
}

/**
 * Scans JSON text and returns the offsets of the top-level "plugins" array: [open, close] brackets.
 * Strings are skipped with their escapes; the text was parsed already, so it is well formed.
 */
export function pluginsArraySpan(text: string): [number, number] | undefined {
  let depth = 0;
  let key: string | undefined;
  let awaitingValue = false;
  let open = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && !awaitingValue) key = JSON.parse(text.slice(i, j + 1)) as string;
      i = j;
    } else if (c === ':' && depth === 1) {
      awaitingValue = true;
    } else if (c === ',' && depth === 1) {
      awaitingValue = false;
      key = undefined;
    } else if (c === '{' || c === '[') {
      if (c === '[' && depth === 1 && awaitingValue && key === 'plugins') open = i;
      depth++;
    } else if (c === '}' || c === ']') {
      depth--;
      if (c === ']' && open >= 0 && depth === 1) return [open, i];
    }
  }
  return undefined;
}

/** Inserts `plugin` as the last element of the top-level plugins array, in the file's own indentation. */
export function insertIntoPlugins(text: string, plugin: unknown): string | undefined {
  const span = pluginsArraySpan(text);
  if (!span) return undefined;
  const [open, close] = span;
  let last = close - 1;
  while (last > open && /\s/.test(text[last]!)) last--;
  const inner = text.slice(open + 1, close);
  if (!inner.includes('\n')) {
    // A list on one line stays on one line.
    const obj = JSON.stringify(plugin).replace(/([:,])(?=["{[\dtf])/g, '$1 ');
    return `${text.slice(0, last + 1)}${last > open ? ', ' : ''}${obj}${text.slice(last + 1)}`;
  }
  // The indentation of the line holding the list's last element, else one unit past the "plugins" line.
  const lineStart = text.lastIndexOf('\n', last) + 1;
  const padOf = (from: number) => /^[ \t]*/.exec(text.slice(from))![0];
  const elemPad = last > open ? padOf(lineStart) : `${padOf(text.lastIndexOf('\n', open) + 1)}${indentUnit(text)}`;
  const unit = indentUnit(text);
  const lines = JSON.stringify(plugin, null, unit).split('\n').map((l) => elemPad + l).join('\n');
  const elemStart = last > open ? lastElementStart(text, open, last) : -1;
  // Keep the file's style: an element that sat on one line gets a one-line sibling.
  const oneLine = elemStart >= 0 && !text.slice(elemStart, last + 1).includes('\n');
  const obj = oneLine ? elemPad + JSON.stringify(plugin).replace(/([:,])(?=["{[\dtf])/g, '$1 ') : lines;
  return `${text.slice(0, last + 1)}${last > open ? ',' : ''}\n${obj}${text.slice(last + 1)}`;
}

/** The offset where the array element ending at `last` starts (its opening brace, at array depth). */
function lastElementStart(text: string, open: number, last: number): number {
  if (text[last] !== '}') return last;
  let depth = 0;
  let start = -1;
  for (let i = open + 1; i <= last; i++) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      i = j;
      continue;
    }
    if (c === '{' || c === '[') {
      if (depth === 0) start = i;
      depth++;
    }
    if (c === '}' || c === ']') depth--;
  }
  return start;
}

/** Structural equality of parsed JSON (key order independent). */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === (b as unknown[]).length && a.every((x, i) => sameJson(x, (b as unknown[])[i]));
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => sameJson((a as Json)[k], (b as Json)[k]));
}

/** A unified diff of two texts (whole-file hunk context of 3 lines), for --dry-run. */
export function unifiedDiff(oldName: string, newName: string, oldText: string, newText: string): string {
  const a = oldText === '' ? [] : oldText.replace(/\n$/, '').split('\n');
  const b = newText === '' ? [] : newText.replace(/\n$/, '').split('\n');
  // LCS table (configuration files are small).
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  }
  // Each op with the 1-based line numbers it has in a and b (or would have, for an insertion/deletion).
  const ops: Array<{ op: ' ' | '-' | '+'; text: string; ai: number; bi: number }> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    // Deletions before insertions where both keep the common part as long, as diff(1) prints them.
    if (i < n && j < m && a[i] === b[j]) ops.push({ op: ' ', text: a[i]!, ai: ++i, bi: ++j });
    else if (i < n && (j >= m || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) ops.push({ op: '-', text: a[i]!, ai: ++i, bi: j });
    else ops.push({ op: '+', text: b[j]!, ai: i, bi: ++j });
  }
  if (!ops.some((o) => o.op !== ' ')) return '';
  const CONTEXT = 3;
  const near = (k: number) => ops.slice(Math.max(0, k - CONTEXT), k + CONTEXT + 1).some((x) => x.op !== ' ');
  const out = [`--- ${oldName}`, `+++ ${newName}`];
  for (let k = 0; k < ops.length; ) {
    if (!near(k)) {
      k++;
      continue;
    }
    let end = k;
    while (end < ops.length && near(end)) end++;
    const hunk = ops.slice(k, end);
    const aLen = hunk.filter((o) => o.op !== '+').length;
    const bLen = hunk.filter((o) => o.op !== '-').length;
    const h = hunk[0]!;
    // The first line number in each file (an insertion's ai is the line before it: +1 when the range is not empty).
    const aStart = aLen === 0 ? h.ai : h.op === '+' ? h.ai + 1 : h.ai;
    const bStart = bLen === 0 ? h.bi : h.op === '-' ? h.bi + 1 : h.bi;
    const range = (start: number, len: number) => (len === 1 ? `${start}` : `${start},${len}`);
    out.push(`@@ -${range(aStart, aLen)} +${range(bStart, bLen)} @@`);
    for (const o of hunk) out.push(`${o.op}${o.text}`);
    k = end;
  }
  return `${out.join('\n')}\n`;
}
