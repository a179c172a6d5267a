/** Sample CNI calls and plans for unit tests: a bridge pod with IPv4 and IPv6 addresses. */
import type { CmdArgs } from '../../src/cni/env.js';
import type { Call } from '../../src/cni/skel.js';
import { containerAddresses, parsePrevResult } from '../../src/cni/result.js';
import { parseConfig } from '../../src/portmap/config.js';
import { type Plan, buildPlan, ownerFor } from '../../src/portmap/plan.js';

export const PREV_RESULT = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0' }, { name: 'eth0', sandbox: '/var/run/netns/p' }],
  ips: [
    { address: '10.244.0.5/24', gateway: '10.244.0.1', interface: 1 },
    { address: 'fd00:244::5/64', interface: 1 },
  ],
};

export const TCP_8080 = { hostPort: 8080, containerPort: 80, protocol: 'tcp' };
export const UDP_8053 = { hostPort: 8053, containerPort: 53, protocol: 'udp' };

export function cmdArgs(command: string, containerId = 'c1'): CmdArgs {
  return { command, containerId, netns: '/var/run/netns/p', ifname: 'eth0', args: '', path: '/opt/cni/bin' };
}

/** A call as cni/skel.ts hands it to the plugin: the raw configuration with its cniVersion resolved. */
export function call(command: string, conf: Record<string, unknown> = {}, mappings: unknown[] = [TCP_8080], withPrev = true): Call {
  const config = {
    cniVersion: '1.0.0' as const,
    name: 'net',
    type: 'portmap',
    ...(mappings.length > 0 ? { runtimeConfig: { portMappings: mappings } } : {}),
    ...(withPrev ? { prevResult: PREV_RESULT } : {}),
    ...conf,
  };
  return { args: cmdArgs(command), config };
}

/** The plan of a pod of network `net` (container `containerId`) with these mappings and options. */
export function planOf(mappings: unknown[] = [TCP_8080], conf: Record<string, unknown> = {}, containerId = 'c1', prev: unknown = PREV_RESULT): Plan {
  const config = parseConfig({ cniVersion: '1.0.0', name: 'net', ...conf, runtimeConfig: { portMappings: mappings }, prevResult: prev });
  return buildPlan(config, ownerFor(config, containerId, 'eth0'), containerAddresses(parsePrevResult(prev, '1.0.0').result, 'eth0'));
}

/** The same pod addresses with another IPv4 address (a second pod of the subnet). */
export function prevWith(v4: string, v6?: string): unknown {
  return {
    ...PREV_RESULT,
    ips: [{ address: v4, interface: 1 }, ...(v6 ? [{ address: v6, interface: 1 }] : [])],
  };
}
