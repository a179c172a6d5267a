import { readFileSync, writeFileSync } from 'node:fs';
import * as z from 'zod/mini';
import { run } from './exec.js';
import type { Family } from '../net/ip.js';

const routeGet = z.array(z.looseObject({ dev: z.optional(z.string()) }));

const v4Number = (addr: string): number => addr.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
/** /proc/net/route writes addresses as the hex of the in-memory (little-endian) 32-bit value. */
const procHex = (hex: string): number => {
  const v = Number.parseInt(hex, 16);
  return (((v & 0xff) << 24) | (((v >>> 8) & 0xff) << 16) | (((v >>> 16) & 0xff) << 8) | ((v >>> 24) & 0xff)) >>> 0;
};
const bits = (mask: number): number => mask.toString(2).replace(/0/g, '').length;

/**
 * The interface of the most specific up route of the main IPv4 table that contains the address, read
 * from /proc/net/route text (pure). Undefined when none matches.
 */
export function routeDeviceFromProc(text: string, address: string): string | undefined {
  const ip = v4Number(address);
  let best: { dev: string; len: number; metric: number } | undefined;
  for (const line of text.split('\n').slice(1)) {
    const [dev, dest, , flags, , , metric, mask] = line.trim().split(/\s+/);
    if (!dev || !dest || !flags || !mask || !metric || (Number.parseInt(flags, 16) & 1) === 0) continue;
    const m = procHex(mask);
    if (((ip & m) >>> 0) !== procHex(dest)) continue;
    const len = bits(m);
    const cand = { dev, len, metric: Number(metric) };
    if (!best || len > best.len || (len === best.len && cand.metric < best.metric)) best = cand;
  }
  return best?.dev;
}

/**
 * The interface the node routes an IPv4 address through, like the reference's RouteGet: the main table
 * from /proc/net/route (no process to start), else `ip -j route get` (policy routing, other tables).
 */
export async function routeDevice(address: string): Promise<string | undefined> {
  try {
    const dev = routeDeviceFromProc(readFileSync('/proc/net/route', 'utf8'), address);
    if (dev) return dev;
  } catch {
    // No procfs view of the routes: ask ip.
  }
  const { stdout } = await run('ip', ['-j', 'route', 'get', address], { timeoutMs: 10_000 });
  const parsed = routeGet.safeParse(JSON.parse(stdout));
  return parsed.success ? parsed.data[0]?.dev : undefined;
}

const IFNAME = /^[^/\s:]{1,15}$/;

function routeLocalnetPath(dev: string): string {
  if (!IFNAME.test(dev) || dev === '.' || dev === '..') throw new Error(`unexpected interface name ${JSON.stringify(dev)}`);
  return `/proc/sys/net/ipv4/conf/${dev}/route_localnet`;
}

// Synchronous: two tiny procfs files; async fs would start libuv's thread pool for them.
export async function readRouteLocalnet(dev: string): Promise<boolean> {
  return readFileSync(routeLocalnetPath(dev), 'utf8').trim() === '1';
}

/** Turns route_localnet on for one interface (only when it is off: no needless write). */
export async function enableRouteLocalnet(dev: string): Promise<void> {
  if (await readRouteLocalnet(dev)) return;
  try {
    writeFileSync(routeLocalnetPath(dev), '1');
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
