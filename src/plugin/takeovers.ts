/**
 * The warnings of an ADD that took host ports over from another attachment (the newest ADD wins), in
 * the operator's words: which pod held them and which one has them now, never the backend's map names.
 *
 *   hostPort 8080/tcp (all addresses) was held by default/web-0 (podnet/5f2c.../eth0); now default/web-1 (podnet/0a9d.../eth0)
 *
 * One line per previous holder and host address (its ports listed, the IPv4 and IPv6 entries of one
 * port counted once). The previous holder's pod comes from its attachment record, when it has one.
 */
import type { PortTakeover } from '../backends/backend.js';
import type { PodName } from '../cni/env.js';
import { type Owner, attachmentName } from '../portmap/owner.js';
import { type AttachmentRecord, recordName } from '../portmap/record.js';

const MAX_PORTS = 8;

const podText = (pod: PodName | undefined, name: string): string => (pod ? `${pod.namespace}/${pod.name} (${name})` : name);

function holderText(from: PortTakeover['from'], record: AttachmentRecord | undefined): string {
  if (record) return podText(record.pod, recordName(record));
  return from.name ?? (from.id ? `attachment ${from.id}` : 'an unknown owner');
}

function whereText(hostIP: string | undefined, families: ReadonlySet<number>): string {
  if (hostIP !== undefined) return `on ${hostIP}`;
  if (families.size > 1) return '(all addresses)';
  return families.has(4) ? '(all IPv4 addresses)' : '(all IPv6 addresses)';
}

interface Group {
  from: PortTakeover['from'];
  hostIP?: string;
  families: Set<number>;
  /** "8080/tcp", "40000-40100/udp", in first-seen order */
  ports: Set<string>;
}

/** The warning lines for `takeovers` by the attachment `now` (whose pod CNI_ARGS named, if any). */
export function takeoverWarnings(
  takeovers: readonly PortTakeover[],
  now: { owner: Owner; pod?: PodName | undefined },
  recordOf: (ownerId: string) => AttachmentRecord | undefined,
): string[] {
  const groups = new Map<string, Group>();
  for (const t of takeovers) {
    const key = `${t.from.id ?? t.from.name ?? ''}|${t.hostIP ?? '*'}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { from: t.from, ...(t.hostIP !== undefined ? { hostIP: t.hostIP } : {}), families: new Set(), ports: new Set() }));
    g.families.add(t.family);
    g.ports.add(`${t.first === t.last ? t.first : `${t.first}-${t.last}`}/${t.protocol}`);
  }
  const current = podText(now.pod, attachmentName(now.owner));
  const out: string[] = [];
  for (const g of groups.values()) {
    let record: AttachmentRecord | undefined;
    try {
      record = g.from.id ? recordOf(g.from.id) : undefined;
    } catch {
      record = undefined;
    }
    const ports = [...g.ports];
    const one = ports.length === 1 && !ports[0]!.includes('-');
    const listed = ports.length > MAX_PORTS ? [...ports.slice(0, MAX_PORTS), `...+${ports.length - MAX_PORTS}`] : ports;
    out.push(
      `${one ? 'hostPort' : 'hostPorts'} ${listed.join(',')} ${whereText(g.hostIP, g.families)} ${one ? 'was' : 'were'} held by ` +
        `${holderText(g.from, record)}; now ${current}`,
    );
  }
  return out;
}
