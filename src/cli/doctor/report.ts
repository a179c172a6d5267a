/** The doctor's report: the human text and the --json document (pure). */
import { type ReadVerdict, verdictJson, verdictLines } from '../completeness.js';
import type { Facts } from '../facts.js';
import { wrap } from '../format.js';
import { loadedNote } from './conflists.js';
import type { Finding } from './finding.js';
import { offPathNote } from './node.js';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Prose wraps at this width; commands never wrap. */
const WIDTH = 100;

/** One finding: its head and fix wrapped, each command on its own line, whole. */
export function formatFinding(f: Finding): string[] {
  const head = `${f.severity === 'error' ? 'ERROR' : 'WARNING'} [${f.id}] ${f.message}`;
  return [
    wrap(head, WIDTH, '    '),
    wrap(`    fix: ${f.fix}`, WIDTH, '         '),
    ...(f.commands ?? []).map((c) => `        ${c}`),
  ];
}

/** Notes that no check turned into a finding: the file the runtime loads, tools off PATH, minor read errors. */
function notes(facts: Facts): string[] {
  const out: string[] = [];
  const conf = loadedNote(facts);
  if (conf) {
    const ignored = conf.ignored.length > 0 ? `; containerd and CRI-O ignore ${conf.ignored.join(', ')}` : '';
    out.push(conf.loads
      ? `CNI configuration: the runtime loads ${conf.loads} (the first file of the directory that loads)${ignored}`
      : `CNI configuration: no file of ${facts.cniConfDir} can be loaded`);
  }
  if (facts.confDirError) out.push(`CNI config directory ${facts.cniConfDir}: ${facts.confDirError} (use --cni-conf-dir DIR)`);
  const off = offPathNote(facts);
  if (off) out.push(off);
  return [...out, ...facts.errors];
}

export function formatFindings(findings: readonly Finding[], rows: number, facts: Facts, verdict: ReadVerdict): string {
  const lines: string[] = verdictLines('doctor', verdict);
  if (lines.length > 0) lines.push('');
  const checked = `${plural(rows, 'hostPort mapping')} checked`;
  if (!verdict.complete) {
    const found = findings.length === 0 ? 'nothing found' : plural(findings.length, 'finding');
    lines.push(wrap(`portmap doctor: ${found} in what could be read (${checked}); the node is not known to be healthy.`, WIDTH, '    '));
  } else if (findings.length === 0) {
    lines.push(`portmap doctor: no problems found (${checked}).`);
  } else {
    lines.push(`portmap doctor: ${plural(findings.length, 'finding')} (${checked})`);
  }
  for (const f of findings) lines.push('', ...formatFinding(f));
  const n = notes(facts);
  if (n.length > 0) lines.push('', ...n.map((x) => wrap(`note: ${x}`, WIDTH, '      ')));
  return `${lines.join('\n')}\n`;
}

/**
 * `portmap doctor --json`. `healthy` is true only when everything was read and nothing was found;
 * `complete` says whether everything was read (`unreadable` lists what was not, `rerun` how to as root).
 */
export function reportJson(findings: readonly Finding[], rows: number, facts: Facts, verdict: ReadVerdict): string {
  const conf = loadedNote(facts);
  const doc = {
    healthy: verdict.complete && findings.length === 0,
    ...verdictJson(verdict),
    mappings: rows,
    findings,
    notes: [...facts.unreadable.map((f) => `${f.what} (${f.source}): ${f.error}`), ...notes(facts)],
    ...(conf ? { cniConfig: { dir: facts.cniConfDir, ...conf } } : {}),
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
