/** What a doctor check returns, and the shape of a check. */
import type { Facts } from '../facts.js';
import type { ListRow } from '../rows.js';

export type Severity = 'error' | 'warning';

export interface Finding {
  id: string;
  severity: Severity;
  message: string;
  fix: string;
}

/**
 * One doctor check: pure, from the gathered facts (and the rows read out of them) to findings.
 * Checks are listed in checks.ts; a new check is one more entry there.
 */
export type Check = (facts: Facts, rows: readonly ListRow[]) => Finding[];
