/** `portmap list`: every hostPort forward of this node, read live from the kernel. */
import { addrPort } from '../net/ip.js';
import { allRows } from './facts.js';
import { emptyFacts, gatherRules } from './gather.js';
import { shortId, table } from './format.js';
import { type ListRow, rowJson, sourceLabel } from './rows.js';

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

/** The human table (pure). */
export function formatRows(rows: readonly ListRow[]): string {
  if (rows.length === 0) return 'No hostPort mappings on this node.\n';
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
  ]);
  const out = table(HEADERS, body);
  const notes = [
    ...(rows.some((r) => !r.hostIP && r.family === 4) ? ['"*": every local IPv4 address'] : []),
    ...(rows.some((r) => !r.hostIP && r.family === 6) ? ['"*6": every local IPv6 address'] : []),
  ];
  const note = notes.length > 0 ? `(${notes.join(', ')})\n` : '';
  return out + note;
}

export interface ListOptions {
  json: boolean;
}

/** Exit status 1 when nothing could be read, else 0. */
export async function runList(
  opts: ListOptions,
  write: (s: string) => void,
  warn: (s: string) => void,
): Promise<number> {
  const facts = emptyFacts();
  if (!facts.tools.nft && !facts.tools.iptables) {
    warn('portmap list: neither nft nor iptables is installed (apt-get install nftables iptables)\n');
  }
  await gatherRules(facts);
  const rows = sortRows(allRows(facts));
  if (opts.json) {
    write(`${JSON.stringify({ mappings: rows.map(rowJson), errors: facts.errors }, null, 2)}\n`);
  } else {
    write(formatRows(rows));
    for (const e of facts.errors) warn(`warning: ${e}\n`);
  }
  return facts.errors.length > 0 && rows.length === 0 ? 1 : 0;
}
