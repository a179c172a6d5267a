/**
 * Whether `list` and `doctor` read the whole node, and what to say when they did not (pure). Neither
 * command ever reports "no mappings" or "healthy" from state it could not read: an incomplete read ends
 * with EXIT_UNREADABLE, names each source that failed with its error, and says what is needed (root).
 */
import type { Privilege, ReadFailure } from './facts.js';
import { commandLine } from './format.js';

/** Exit status of list and doctor when the node's state could not be read, or only partly. */
export const EXIT_UNREADABLE = 4;

const PERMISSION = /operation not permitted|permission denied|you must be root|\bEACCES\b|\bEPERM\b/i;

const andList = (items: readonly string[]): string =>
  items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;

/** Whether an error text says it failed for lack of privileges. */
export const isPermissionText = (text: string): boolean => PERMISSION.test(text);

export interface ReadVerdict {
  /** Every source the command needs was read. */
  complete: boolean;
  /** The failures that make it incomplete. */
  failures: ReadFailure[];
  /** None of the sources of hostPort rules could be read: no mapping is known at all. */
  nothingRead: boolean;
  /** Why, in one line; undefined when complete. */
  reason?: string;
  /** The command to run instead (as root), whole and pasteable; when privileges are what is missing. */
  rerun?: string;
}

export interface VerdictInput {
  unreadable: readonly ReadFailure[];
  /** How many sources of hostPort rules were read. */
  rulesRead: number;
  privilege?: Privilege;
}

/**
 * The verdict for a command: `list` needs the rules only; `doctor` also its records, the libcni cache and
 * the CNI configuration. `argv` is how to run this command again: [executable, command, ...options].
 */
export function readVerdict(input: VerdictInput, needs: 'rules' | 'all', argv: readonly string[]): ReadVerdict {
  const failures = input.unreadable.filter((f) => needs === 'all' || f.rules);
  const nothingRead = input.rulesRead === 0 && input.unreadable.some((f) => f.rules);
  if (failures.length === 0) return { complete: true, failures, nothingRead: false };
  const p = input.privilege;
  const denied = failures.some((f) => f.permission);
  const rerun = `sudo ${commandLine(argv)}`;
  const deniedRules = failures.some((f) => f.permission && f.rules);
  const deniedWhat = [...new Set(failures.filter((f) => f.permission).map((f) => (f.rules ? "the kernel's nft and iptables rules" : f.what)))];
  const rootFor = `reading ${andList(deniedWhat)} needs root${deniedRules ? ' (CAP_NET_ADMIN)' : ''}`;
  let reason: string;
  if (denied && p && p.uid !== 0) {
    reason = `not running as root (uid ${p.uid}): ${rootFor}`;
  } else if (denied && p?.netAdmin === false && deniedRules) {
    reason = 'running without CAP_NET_ADMIN: reading nft and iptables rules needs it (in a container: give it ' +
      "CAP_NET_ADMIN and the node's network namespace; on the node: run it with sudo)";
  } else if (denied) {
    reason = `permission denied: ${rootFor}`;
  } else {
    const n = failures.length;
    reason = `${n === 1 ? 'one source' : `${n} sources`} of the node's state could not be read`;
  }
  return { complete: false, failures, nothingRead, reason, ...(denied ? { rerun } : {}) };
}

/** The lines that say what could not be read and what to do (for list's stderr and doctor's report). */
export function verdictLines(cmd: string, v: ReadVerdict): string[] {
  if (v.complete) return [];
  const what = v.nothingRead ? "could not read the node's hostPort rules" : 'the report is incomplete';
  const lines = [`portmap ${cmd}: ${what}: ${v.reason}.`];
  if (v.rerun) lines.push('  run it as root:', `    ${v.rerun}`);
  lines.push('  not read:');
  for (const f of v.failures) lines.push(`    ${f.what} (${f.source}): ${f.error}`);
  return lines;
}

/** The --json fields every report command adds: whether it is complete, and what was not read. */
export function verdictJson(v: ReadVerdict): { complete: boolean; unreadable: ReadFailure[]; reason?: string; rerun?: string } {
  return {
    complete: v.complete,
    unreadable: v.failures,
    ...(v.reason ? { reason: v.reason } : {}),
    ...(v.rerun ? { rerun: v.rerun } : {}),
  };
}
