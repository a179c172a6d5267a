/** What an ADD or DEL does on the node besides the firewall change: conntrack and route_localnet. */
import { log } from '../host/log.js';
import type { Plan } from '../portmap/plan.js';
import type { PluginDeps } from './deps.js';

/** UDP host ports per family: their stale conntrack entries go on ADD and DEL. */
export async function flushUdp(deps: PluginDeps, plan: Plan): Promise<void> {
  const jobs = plan.families.flatMap((fp) => {
    const ports = new Set(fp.forwards.filter((f) => f.protocol === 'udp').map((f) => f.hostPort));
    return [...ports].map((port) =>
      deps.flushUdpConntrack(port, fp.family).catch((err: Error) => {
        log.warn(`failed to delete stale UDP conntrack entries for port ${port}: ${err.message}`);
      }),
    );
  });
  await Promise.all(jobs);
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
