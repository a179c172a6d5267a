/** `portmap doctor`: gathers the facts of the node, runs the checks, prints the report. */
import { allRows } from '../facts.js';
import { gatherAll } from '../gather.js';
import { diagnose } from './checks.js';
import { formatFindings, reportJson } from './report.js';
import { checkDrift } from './drift.js';
import { type DriftOptions, gatherDrift } from './drift-facts.js';

export interface DoctorOptions extends DriftOptions {
  json: boolean;
  cniConfDir: string;
}

/** Exit status 0 when healthy, 1 with findings. */
export async function runDoctor(opts: DoctorOptions, write: (s: string) => void): Promise<number> {
  const facts = await gatherAll(opts.cniConfDir);
  // The drift audit (records and the libcni cache against the kernel, issue #13): drift.ts.
  const findings = [...diagnose(facts), ...checkDrift(gatherDrift(facts, opts))];
  const rows = allRows(facts).length;
  write((opts.json ? reportJson : formatFindings)(findings, rows, facts));
  return findings.length === 0 ? 0 : 1;
}
