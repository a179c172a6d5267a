/** Which interface the node routes an address through (for route_localnet). */
import { readFileSync } from 'node:fs';
import * as z from 'zod/mini';
import { type Runner, run } from './exec.js';

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
export async function routeDevice(address: string, runner: Runner = run): Promise<string | undefined> {
  try {
    const dev = routeDeviceFromProc(readFileSync('/proc/net/route', 'utf8'), address);
    if (dev) return dev;
  } catch {
    // No procfs view of the routes: ask ip.
  }
  const { stdout } = await runner('ip', ['-j', 'route', 'get', address], { timeoutMs: 10_000 });
  const parsed = routeGet.safeParse(JSON.parse(stdout));
  return parsed.success ? parsed.data[0]?.dev : undefined;
}

