/** `portmap doctor`: gathers the facts of the node, runs the checks, prints the report. */
import { resolve } from 'node:path';
import { DEFAULT_CNI_CACHE_DIR } from '../../cni/cache.js';
import { DEFAULT_DATA_DIR } from '../../portmap/config.js';
import { parseArgs } from '../args.js';
import { DEFAULT_CNI_CONF_DIR } from '../cni-dirs.js';
import { EXIT_UNREADABLE, readVerdict } from '../completeness.js';
import { allRows } from '../facts.js';
import { gatherAll } from '../gather.js';
import { EXIT_USAGE, usageExit } from '../usage.js';
import { diagnose } from './checks.js';
import { formatFindings, reportJson } from './report.js';
import { checkDrift } from './drift.js';
import { type DriftOptions, gatherDrift } from './drift-facts.js';

export const DOCTOR_HELP = `Usage: portmap doctor [--json] [--cni-conf-dir DIR] [--data-dir DIR] [--cni-cache-dir DIR]

Checks the node's hostPort setup and explains each finding with its fix (the commands to run are
printed whole, one per line). It reads the kernel's rules (as portmap list does), portmap's records,
the runtime's libcni cache and the CNI configuration directory, and finds:
  - two owners for one host port (which one receives the traffic), a host port taken over by
    another pod, pods whose hostPorts are not forwarded (rules flushed: portmap restore), forwards
    and records of pods that are gone;
  - hostPorts that take Service traffic (ipvs ClusterIPs, NodePorts, KUBE-SERVICES after our jump,
    kube-proxy in the other iptables flavour), processes listening on a mapped port;
  - in every configuration file a runtime would load (.conflist, .conf, .json): invalid JSON (with
    the line and column), a .conf holding a "plugins" list, a portmap entry without the
    portMappings capability, values every ADD rejects (e.g. "backend": "nft"), unknown or misspelt
    keys, options the backend ignores; which file the runtime loads;
  - ip_forward off, route_localnet off where localhost mappings exist, missing tools.
Run it as root in the node's network namespace. Tools are looked for on PATH, then in
/usr/local/sbin, /usr/sbin and /sbin.

Options:
  --json, -j            print JSON: {"healthy", "complete", "unreadable", "mappings", "findings",
                        "notes", "cniConfig"}; each finding has "id", "severity", "message", "fix"
                        and, when there are any, "commands" and "where" (file, plugin, key)
  --cni-conf-dir DIR    the CNI configuration directory (default ${DEFAULT_CNI_CONF_DIR})
  --data-dir DIR        portmap's attachment records (default ${DEFAULT_DATA_DIR}; the conflists'
                        "dataDir" if they set one)
  --cni-cache-dir DIR   the runtime's libcni cache (default ${DEFAULT_CNI_CACHE_DIR})
  --help, -h            this text

Examples:
  /opt/cni/bin/portmap doctor
  /opt/cni/bin/portmap doctor --json --cni-conf-dir /etc/cni/net.d

Exit status:
  0  healthy: everything was read and nothing was found
  1  findings (each is printed with its fix)
  2  usage error (an unknown option, a missing value)
  4  some of the node's state could not be read (not root, a tool failed, a directory unreadable):
     the findings printed are those of what could be read; --json: "complete" and "healthy" are
     false
`;

export interface DoctorOptions extends DriftOptions {
  json: boolean;
  cniConfDir: string;
  help?: boolean;
}

/** doctor's options (pure). */
export function parseDoctorArgs(args: readonly string[]): (DoctorOptions & { help: boolean }) | { error: string } {
  const p = parseArgs(args, [
    { name: '--json', short: '-j' },
    { name: '--cni-conf-dir', value: 'dir' },
    { name: '--data-dir', value: 'dir' },
    { name: '--cni-cache-dir', value: 'dir' },
  ]);
  if ('error' in p) return p;
  const dir = (name: string): string | undefined => {
    const v = p.values.get(name);
    return v === undefined ? undefined : resolve(v);
  };
  const dataDir = dir('--data-dir');
  const cniCacheDir = dir('--cni-cache-dir');
  return {
    json: p.flags.has('--json'),
    cniConfDir: dir('--cni-conf-dir') ?? DEFAULT_CNI_CONF_DIR,
    ...(dataDir ? { dataDir } : {}),
    ...(cniCacheDir ? { cniCacheDir } : {}),
    help: p.help,
  };
}

/**
 * Exit status 0 when healthy, 1 with findings, 4 when not everything could be read. `argv` is how this
 * command was run ([executable, "doctor", ...options]): the fixes' commands and "run it as root" use it.
 */
export async function runDoctor(opts: DoctorOptions, write: (s: string) => void, argv: readonly string[] = ['portmap', 'doctor']): Promise<number> {
  const facts = await gatherAll(opts.cniConfDir);
  // The drift audit (records and the libcni cache against the kernel, issue #13): drift.ts.
  const drift = { ...gatherDrift(facts, opts), self: argv[0]!, iptables: facts.iptables };
  const findings = [...diagnose(facts), ...checkDrift(drift)];
  const verdict = readVerdict(facts, 'all', argv);
  const rows = allRows(facts).length;
  write((opts.json ? reportJson : formatFindings)(findings, rows, facts, verdict));
  if (!verdict.complete) return EXIT_UNREADABLE;
  return findings.length === 0 ? 0 : 1;
}

/** `portmap doctor ...` from the command line. */
export async function runDoctorCommand(args: readonly string[], self: string, write: (s: string) => void, warn: (s: string) => void): Promise<number> {
  const o = parseDoctorArgs(args);
  const early = usageExit('doctor', o, DOCTOR_HELP, write, warn);
  if (early !== undefined || 'error' in o) return early ?? EXIT_USAGE;
  const code = await runDoctor(o, write, [self, 'doctor', ...args]);
  // With --json, stdout is the document only: say why it is incomplete on stderr too.
  if (code === EXIT_UNREADABLE && o.json) warn('portmap doctor: not all of the node could be read (see "unreadable"; exit 4)\n');
  return code;
}
