/** Processes listening on the node, from `ss -Hltunp` (pure). */
import type { Listener } from './facts.js';

const lines = (text: string | undefined): string[] => (text ?? '').split('\n').map((l) => l.trim()).filter(Boolean);

/** Parses `ss -Hltunp` (pure). */
export function parseSs(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of lines(text)) {
    const cols = line.split(/\s+/);
    // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
    const [netid, , , , local, , ...rest] = cols;
    if (!netid || !local) continue;
    const i = local.lastIndexOf(':');
    const port = Number(local.slice(i + 1));
    let address = local.slice(0, i).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    if (address === '*') address = '*';
    const proc = /users:\(\("([^"]+)",pid=(\d+)/.exec(rest.join(' '));
    if (!Number.isInteger(port)) continue;
    out.push({ protocol: netid, address, port, ...(proc ? { process: `${proc[1]} (pid ${proc[2]})` } : {}) });
  }
  return out;
}
