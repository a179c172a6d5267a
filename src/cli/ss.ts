/** Processes listening on the node, from `ss -Hltunp` (pure). */
import type { Listener } from './facts.js';
import { lines } from './format.js';

export function parseSs(text: string): Listener[] {
  const out: Listener[] = [];
  for (const line of lines(text)) {
    const cols = line.split(/\s+/);
    // Netid State Recv-Q Send-Q Local:Port Peer:Port [Process]
    const [netid, , , , local, , ...rest] = cols;
    if (!netid || !local) continue;
    const i = local.lastIndexOf(':');
    const port = Number(local.slice(i + 1));
    const address = local.slice(0, i).replace(/^\[|\]$/g, '').replace(/%.*$/, '');
    const proc = /users:\(\("([^"]+)",pid=(\d+)/.exec(rest.join(' '));
    if (!Number.isInteger(port)) continue;
    const process = proc ? { process: `${proc[1]} (pid ${proc[2]})` } : {};
    out.push({ protocol: netid, address, port, ...process });
  }
  return out;
}
