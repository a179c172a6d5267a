/** `portmap list`: every hostPort forward of this node, read live from the kernel. */
import { resolve } from 'node:path';
import { addrPort } from '../net/ip.js';
import type { PodName } from '../cni/env.js';
import { DEFAULT_DATA_DIR } from '../portmap/config.js';
import { type AttachmentRecord, recordId } from '../portmap/record.js';
import { parseArgs } from './args.js';
import { EXIT_UNREADABLE, readVerdict, verdictJson, verdictLines } from './completeness.js';
import { type Facts, allRows } from './facts.js';
import { emptyFacts, gatherRules } from './gather.js';
import { shortId, table } from './format.js';
import { type ListRow, rowJson, sourceLabel } from './rows.js';
import { EXIT_USAGE, usageExit } from './usage.js';

export const LIST_HELP = `Usage: portmap list [--json] [--data-dir DIR]

Every hostPort forward on this node, read live from the kernel: this plugin's nft table (inet
cni_portmap) and iptables chains, and the reference plugin's (iptables CNI-DN-* chains in every
flavour and family that has a nat table, nft tables ip/ip6 cni_hostport), with the connections each
forward counted and, from portmap's records, the Kubernetes pod it belongs to. Run it as root in the
node's network namespace: reading the rules needs CAP_NET_ADMIN. It never reports "no mappings"
from rules it could not read: it says what it could not read, and exits 4.

Options:
  --json, -j        print JSON: {"mappings": [...], "complete": true|false, "unreadable": [...],
                    "errors": [...]}; "complete" is false when some rules could not be read
  --data-dir DIR    portmap's attachment records, for the pods' names (default ${DEFAULT_DATA_DIR};
                    the conflists' "dataDir" if they set one)
  --help, -h        this text

Examples:
  /opt/cni/bin/portmap list
  /opt/cni/bin/portmap list --json

Exit status:
  0  every source of hostPort rules was read (the list may be empty)
  2  usage error (an unknown option, a missing value)
  4  the node's rules could not be read, or only some of them (not root, a tool failed): what was
     read is printed, what was not is said on stderr (--json: "complete": false and "unreadable")
`;

/** Stable order: port, protocol, family, host address, source. */
function sortRows(rows: readonly ListRow[]): ListRow[] {
  return [...rows].sort(
    (a, b) =>
      a.hostPort - b.hostPort ||
      String(a.protocol).localeCompare(String(b.protocol)) ||
      a.family - b.family ||
      (a.hostIP ?? '').localeCompare(b.hostIP ?? '') ||
      sourceLabel(a.source).localeCompare(sourceLabel(b.source)),
  );
}

/** The BACKEND column: nftables, iptables-nft or iptables-legacy; the reference plugin's marked. */
const backendLabel = (r: ListRow): string => {
  const base = r.source.kind === 'iptables' ? sourceLabel(r.source) : 'nftables';
  return r.origin === 'reference' ? `${base} (reference plugin)` : base;
};

const HEADERS = ['PROTO', 'HOST ADDRESS', 'PORT', '', 'CONTAINER', 'NETWORK', 'CONTAINER ID', 'IF', 'CONNS', 'BACKEND'];

/** The human table (pure); a POD column when some row's record names its pod. */
export function formatRows(rows: readonly ListRow[]): string {
  if (rows.length === 0) return 'No hostPort mappings on this node.\n';
  const pods = rows.some((r) => r.pod !== undefined);
  const body = sortRows(rows).map((r) => [
    String(r.protocol),
    r.hostIP ?? (r.family === 4 ? '*' : '*6'),
    r.lastHostPort !== undefined ? `${r.hostPort}-${r.lastHostPort}` : String(r.hostPort),
    '->',
    addrPort(r.podIP, r.containerPort) + (r.lastHostPort !== undefined ? `-${r.lastHostPort}` : ''),
    r.network ?? '-',
    shortId(r.containerID, 24),
    r.ifname ?? '-',
    r.connections !== undefined ? String(r.connections) : '-',
    backendLabel(r) + (r.conditional ? ' [conditions]' : ''),
    ...(pods ? [r.pod ? `${r.pod.namespace}/${r.pod.name}` : '-'] : []),
  ]);
  const out = table(pods ? [...HEADERS, 'POD'] : HEADERS, body);
  const notes = [
    ...(rows.some((r) => !r.hostIP && r.family === 4) ? ['"*": every local IPv4 address'] : []),
    ...(rows.some((r) => !r.hostIP && r.family === 6) ? ['"*6": every local IPv6 address'] : []),
  ];
  const note = notes.length > 0 ? `(${notes.join(', ')})\n` : '';
  return out + note;
}

export interface ListOptions {
  json: boolean;
  dataDir: string;
  help: boolean;
}

/** list's options (pure). */
export function parseListArgs(args: readonly string[]): ListOptions | { error: string } {
  const p = parseArgs(args, [{ name: '--json', short: '-j' }, { name: '--data-dir', value: 'dir' }]);
  if ('error' in p) return p;
  return { json: p.flags.has('--json'), dataDir: resolve(p.values.get('--data-dir') ?? DEFAULT_DATA_DIR), help: p.help };
}

/** The pod of each row whose attachment has a record naming it (pure): by owner id, or network and container. */
export function withPods(rows: readonly ListRow[], records: readonly AttachmentRecord[]): ListRow[] {
  const named = records.filter((r) => r.pod !== undefined);
  if (named.length === 0) return [...rows];
  const byId = new Map<string, PodName>(named.map((r) => [recordId(r), r.pod!]));
  return rows.map((row) => {
    const pod = (row.ownerId !== undefined ? byId.get(row.ownerId) : undefined) ??
      named.find((r) => row.containerID !== undefined && r.containerID === row.containerID && (row.network === undefined || r.network === row.network) &&
        (row.ifname === undefined || r.ifname === row.ifname))?.pod;
    return pod ? { ...row, pod: { namespace: pod.namespace, name: pod.name } } : row;
  });
}

/** The records, for the pods' names; a failure to read them is a note (the list is complete without). */
async function records(facts: Facts, dataDir: string): Promise<AttachmentRecord[]> {
  try {
    const { RecordStore } = await import('../plugin/records.js');
    return new RecordStore(dataDir).list().records.map((r) => r.record);
  } catch (err) {
    facts.errors.push(`could not read the records in ${dataDir} (for the pods' names): ${(err as Error).message}`);
    return [];
  }
}

/**
 * Exit status 0 when every source of rules was read, 4 when not (see completeness.ts). `argv` is how
 * this command was run ([executable, "list", ...options]), for the "run it as root" line.
 */
export async function runList(
  opts: ListOptions,
  write: (s: string) => void,
  warn: (s: string) => void,
  argv: readonly string[] = ['portmap', 'list'],
): Promise<number> {
  const facts = emptyFacts();
  await gatherRules(facts);
  const verdict = readVerdict(facts, 'rules', argv);
  const rows = sortRows(withPods(allRows(facts), facts.rulesRead > 0 ? await records(facts, opts.dataDir) : []));
  if (opts.json) {
    write(`${JSON.stringify({ mappings: rows.map(rowJson), ...verdictJson(verdict), errors: [...verdict.failures.map((f) => `${f.what} (${f.source}): ${f.error}`), ...facts.errors] }, null, 2)}\n`);
  } else if (!verdict.nothingRead) {
    // Rows read, or none where everything was read; never "no mappings" when nothing could be read.
    write(verdict.complete || rows.length > 0 ? formatRows(rows) : 'No hostPort mappings in the rules that could be read.\n');
  }
  for (const line of verdictLines('list', verdict)) warn(`${line}\n`);
  if (!opts.json) for (const e of facts.errors) warn(`warning: ${e}\n`);
  return verdict.complete ? 0 : EXIT_UNREADABLE;
}

/** `portmap list ...` from the command line. */
export async function runListCommand(args: readonly string[], self: string, write: (s: string) => void, warn: (s: string) => void): Promise<number> {
  const o = parseListArgs(args);
  const early = usageExit('list', o, LIST_HELP, write, warn);
  if (early !== undefined || 'error' in o) return early ?? EXIT_USAGE;
  return runList(o, write, warn, [self, 'list', ...args]);
}
