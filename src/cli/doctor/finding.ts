/** What a doctor check returns, and the shape of a check. */
import type { Facts } from '../facts.js';
import type { ListRow } from '../rows.js';

export type Severity = 'error' | 'warning';

export interface Finding {
  id: string;
  severity: Severity;
  message: string;
  /** What to do, in words (it names no command inline: commands go to `commands`). */
  fix: string;
  /**
   * Commands that carry the fix out, each one whole and pasteable as root (a line starting with "#" is a
   * shell comment saying what the next ones do). The report prints each on its own line, never wrapped.
   */
  commands?: string[];
  /** For findings in the CNI configuration: the file, the plugin's index in its list, the key, the key meant. */
  where?: { file: string; plugin?: number; key?: string; suggestion?: string };
}

/**
 * One doctor check: pure, from the gathered facts (and the rows read out of them) to findings.
 * Checks are listed in checks.ts; a new check is one more entry there.
 */
export type Check = (facts: Facts, rows: readonly ListRow[]) => Finding[];
