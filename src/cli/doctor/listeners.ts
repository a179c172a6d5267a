/** A process listening on a host port that is DNATed. */
import { addrPort, ipFamily } from '../../net/ip.js';
import type { Facts, Listener } from '../facts.js';
import type { ListRow } from '../rows.js';
import { describeRow, excludesOf, inCidrs, hostPortText } from './describe.js';
import type { Finding } from './finding.js';

const WILDCARDS = new Set(['*', '0.0.0.0', '::']);

/** Whether a listener's address and port are among those a row DNATs. */
function listenerMatches(l: Listener, r: ListRow): boolean {
  if (l.protocol !== r.protocol || l.port !== r.hostPort) return false;
  if (WILDCARDS.has(l.address)) {
    if (l.address === '0.0.0.0') return r.family === 4;
    return true;
  }
  if (ipFamily(l.address) !== r.family) return false;
  return !r.hostIP || r.hostIP === l.address;
}

/** A process listening on a DNATed host port: it never receives new connections on those addresses. */
export function checkListeners(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const l of facts.listeners ?? []) {
    for (const r of rows) {
      if (!listenerMatches(l, r)) continue;
      if (!WILDCARDS.has(l.address) && inCidrs(l.address, excludesOf(r, facts))) continue;
      const id = `${l.protocol}|${l.address}|${l.port}|${r.containerID ?? r.podIP}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        id: 'listener-shadowed',
        severity: 'warning',
        message: `${l.process ?? 'A process'} listens on ${l.protocol} ${addrPort(l.address, l.port)}, ` +
          `but hostPort ${hostPortText(r)} sends every new ${l.protocol.toUpperCase()} connection for port ` +
          `${r.hostPort} on ${r.hostIP ?? 'any local address'} to ${describeRow(r)}: the process never ` +
          'receives them (ss, netstat and lsof do not show hostPorts).',
        fix: 'Move the process to another port, or remove or change the pod\'s hostPort (or give it a hostIP ' +
          'that the process does not use).',
      });
    }
  }
  return out;
}
