/** The route_localnet sysctl of one interface (IPv4 localhost forwarding). */
import { readFileSync, writeFileSync } from 'node:fs';

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


const FORWARDING: Record<4 | 6, string> = {
  4: '/proc/sys/net/ipv4/ip_forward',
  6: '/proc/sys/net/ipv6/conf/all/forwarding',
};

/** The node's forwarding sysctl of a family, as written ('0', '1'); undefined when unreadable. */
export function readForwarding(family: 4 | 6): string | undefined {
  try {
    return readFileSync(FORWARDING[family], 'utf8').trim();
  } catch {
    return undefined;
  }
}
