/** Stale UDP conntrack entries of a host port. */
import { type Runner, run } from './exec.js';
import type { Family } from '../net/ip.js';

/**
 * Deletes the conntrack entries of UDP flows to a host port, so a client that keeps sending from the
 * same source port reaches the new DNAT target instead of a stale one. conntrack exits 1 when there
 * was nothing to delete.
 */
export async function flushUdpConntrack(port: number, family: Family, runner: Runner = run): Promise<void> {
  await runner('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(port), '-f', family === 4 ? 'ipv4' : 'ipv6'], {
    okCodes: [1],
    timeoutMs: 10_000,
  });
}
