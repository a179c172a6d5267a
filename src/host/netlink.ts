import { readFile, writeFile } from 'node:fs/promises';
import * as z from 'zod/mini';
import { run } from './exec.js';
import type { Family } from '../net/ip.js';

const routeGet = z.array(z.looseObject({ dev: z.optional(z.string()) }));

/** The interface the node routes an address through (`ip -j route get`), like the reference's RouteGet. */
export async function routeDevice(address: string): Promise<string | undefined> {
  const { stdout } = await run('ip', ['-j', 'route', 'get', address], { timeoutMs: 10_000 });
  const parsed = routeGet.safeParse(JSON.parse(stdout));
  return parsed.success ? parsed.data[0]?.dev : undefined;
}

const IFNAME = /^[^/\s:]{1,15}$/;

function routeLocalnetPath(dev: string): string {
  if (!IFNAME.test(dev) || dev === '.' || dev === '..') throw new Error(`unexpected interface name ${JSON.stringify(dev)}`);
  return `/proc/sys/net/ipv4/conf/${dev}/route_localnet`;
}

export async function readRouteLocalnet(dev: string): Promise<boolean> {
  return (await readFile(routeLocalnetPath(dev), 'utf8')).trim() === '1';
}

/** Turns route_localnet on for one interface (only when it is off: no needless write). */
export async function enableRouteLocalnet(dev: string): Promise<void> {
  if (await readRouteLocalnet(dev)) return;
  try {
    await writeFile(routeLocalnetPath(dev), '1');
  } catch (err) {
    throw new Error(`unable to enable route_localnet on ${dev}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Deletes the conntrack entries of UDP flows to a host port, so a client that keeps sending from the
 * same source port reaches the new DNAT target instead of a stale one. conntrack exits 1 when there
 * was nothing to delete.
 */
export async function flushUdpConntrack(port: number, family: Family): Promise<void> {
  await run('conntrack', ['-D', '-p', 'udp', '--orig-port-dst', String(port), '-f', family === 4 ? 'ipv4' : 'ipv6'], {
    okCodes: [1],
    timeoutMs: 10_000,
  });
}
