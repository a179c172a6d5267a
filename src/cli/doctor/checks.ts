/**
 * The doctor's checks, in report order. Each is a pure function of the gathered facts (see finding.ts);
 * a new check is one more entry in CHECKS (and, if it needs more, one more fact in facts.ts, read by
 * gather.ts).
 */
import { type Facts, allRows } from '../facts.js';
import { checkConflists } from './conflists.js';
import type { Check, Finding } from './finding.js';
import { checkListeners } from './listeners.js';
import { checkSysctls, checkTools } from './node.js';
import { checkDuplicateOwners } from './owners.js';
import { checkFlavourSplit, checkKubeServicesOrder, checkServiceCapture } from './services.js';

export const CHECKS: readonly Check[] = [
  checkTools,
  checkSysctls,
  checkConflists,
  checkDuplicateOwners,
  checkServiceCapture,
  checkKubeServicesOrder,
  checkFlavourSplit,
  checkListeners,
];

/** Every check over the facts (pure). */
export function diagnose(facts: Facts, checks: readonly Check[] = CHECKS): Finding[] {
  const rows = allRows(facts);
  return checks.flatMap((check) => check(facts, rows));
}
