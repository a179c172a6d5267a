/** What an ADD or DEL does on the node besides the firewall change: conntrack and route_localnet. */
import { log } from '../host/log.js';
import type { UdpTarget } from '../host/conntrack.js';
import type { Plan } from '../portmap/plan.js';
import { compactForwards, protocolIntervals } from '../portmap/ranges.js';
import type { PluginDeps } from './deps.js';

/** UDP host ports per family: their stale conntrack entries go on ADD and DEL, in a few processes. */
export async function flushUdp(deps: PluginDeps, plan: Plan, verb: 'ADD' | 'DEL' = 'ADD'): Promise<void> {
  const targets: UdpTarget[] = plan.families
    .map((fp) => ({
      family: fp.family,
      ports: protocolIntervals(compactForwards(fp.forwards), 'udp'),
      pod: fp.pod.address,
    }))
    .filter((t) => t.ports.length > 0);
  if (targets.length === 0) return;
  try {
    await deps.flushUdpConntrack(targets, verb);
  } catch (err) {
    const ports = targets.map((t) => `${t.ports.map((p) => (p.first === p.last ? p.first : `${p.first}-${p.last}`)).join(',')} (IPv${t.family})`);
    log.warn(`failed to delete stale UDP conntrack entries for ports ${ports.join(' ')}: ${(err as Error).message}`);
  }
}

/** The interface that routes to the pod, for IPv4 localhost forwarding (route_localnet). */
export async function localnetDevice(deps: PluginDeps, plan: Plan): Promise<string | undefined> {
  const fp = plan.families.find((f) => f.localhost);
  if (!fp) return undefined;
  try {
    return await deps.routeDevice(fp.pod.address);
  } catch (err) {
    log.warn(`no route to ${fp.pod.address}, localhost forwarding not enabled: ${(err as Error).message}`);
    return undefined;
  }
}
