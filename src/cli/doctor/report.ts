/** The doctor's report: the human text and the --json document (pure). */
import type { Facts } from '../facts.js';
import { wrap } from '../format.js';
import type { Finding } from './finding.js';

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function formatFindings(findings: readonly Finding[], rows: number, facts: Facts): string {
  const lines: string[] = [];
  const checked = `${plural(rows, 'hostPort mapping')} checked`;
  if (findings.length === 0) {
    lines.push(`portmap doctor: no problems found (${checked}).`);
  } else {
    lines.push(`portmap doctor: ${plural(findings.length, 'finding')} (${checked})`);
    for (const f of findings) {
      const head = `${f.severity === 'error' ? 'ERROR' : 'WARNING'} [${f.id}] ${f.message}`;
      lines.push('', wrap(head, 100, '    '), wrap(`    fix: ${f.fix}`, 100, '         '));
    }
  }
  if (facts.confDirError) {
    lines.push('', `note: CNI config directory ${facts.cniConfDir}: ${facts.confDirError} (use --cni-conf-dir DIR)`);
  }
  for (const e of facts.errors) lines.push(`note: ${e}`);
  return `${lines.join('\n')}\n`;
}

/** `portmap doctor --json` */
export function reportJson(findings: readonly Finding[], rows: number, facts: Facts): string {
  const doc = { healthy: findings.length === 0, mappings: rows, findings, notes: facts.errors };
  return `${JSON.stringify(doc, null, 2)}\n`;
}
