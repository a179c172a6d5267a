import type { Call, PluginVerbs } from '../cni/skel.js';
import { CniError, ErrorCode } from '../cni/errors.js';
import { type PrevResult, containerAddresses, convertResult, parsePrevResult } from '../cni/result.js';
import { withLock } from '../host/lock.js';
import { log } from '../host/log.js';
import { testpoint } from '../host/testpoint.js';
import { enableRouteLocalnet, flushUdpConntrack, readRouteLocalnet, routeDevice } from '../host/netlink.js';
import type { Backend } from '../backends/backend.js';
import type { BackendName } from '../cni/config.js';
import type { Owner } from './owner.js';
import { backendFor, loadBackend, onPath } from './backend-select.js';
import { type Plan, buildPlan, ownerFor, validOwnerIds } from './plan.js';

/** UDP host ports per family: their stale conntrack entries go on ADD and DEL. */
async function flushUdp(plan: Plan): Promise<void> {
  const jobs = plan.families.flatMap((fp) =>
    [...new Set(fp.forwards.filter((f) => f.protocol === 'udp').map((f) => f.hostPort))].map((port) =>
      flushUdpConntrack(port, fp.family).catch((err: Error) => log.warn(`failed to delete stale UDP conntrack entries for port ${port}: ${err.message}`)),
    ),
  );
  await Promise.all(jobs);
}

/** The interface that routes to the pod, for IPv4 localhost forwarding (route_localnet). */
async function localnetDevice(plan: Plan): Promise<string | undefined> {
  const fp = plan.families.find((f) => f.localhost);
  if (!fp) return undefined;
  try {
    return await routeDevice(fp.pod.address);
  } catch (err) {
    log.warn(`no route to ${fp.pod.address}, localhost forwarding not enabled: ${(err as Error).message}`);
    return undefined;
  }
}

/** The prevResult of an ADD or CHECK, which cannot work without one. */
function requirePrevResult(call: Call): PrevResult {
  const { config } = call;
  if (config.prevResult === undefined) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      call.args.command === 'CHECK' ? 'Required prevResult missing' : 'must be called as chained plugin',
      "portmap runs after a main plugin (bridge, ptp, ...) in a conflist; it needs that plugin's result",
    );
  }
  return parsePrevResult(config.prevResult, config.cniVersion);
}

function planOf(call: Call, prev: PrevResult): Plan {
  const { config, args } = call;
  return buildPlan(config, ownerFor(config, args.containerId, args.ifname), containerAddresses(prev.result, args.ifname));
}

/**
 * Without a configured `backend`, DEL and GC also clean the other backend when its tools exist: a node
 * may hold rules from before the default changed, such as the reference plugin's iptables rules after
 * its binary was swapped for this one (the reference defaults to iptables, this plugin to nftables).
 */
function otherBackendName(config: Call['config'], primary: Backend): BackendName | undefined {
  if (config.backend) return undefined;
  const name = primary.name === 'nftables' ? 'iptables' : 'nftables';
  return onPath(name === 'nftables' ? 'nft' : 'iptables-restore') ? name : undefined;
}

async function bestEffort(what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    log.warn(`${what} failed (ignored: the configured backend succeeded): ${(err as Error).message}`);
  }
}

/**
 * DEL in the configured backend and, per otherBackendName, in the other one. When the configured backend
 * proves the attachment was its own (nftables: the ownership witness), the other one holds nothing of
 * it and is not searched: the common DEL runs no iptables process. Otherwise both run in parallel.
 */
async function delEverywhere(backend: Backend, other: BackendName | undefined, owner: Owner, plan: Plan | undefined): Promise<void> {
  const cleanOther = async () => {
    const b = await loadBackend(other!);
    // The other backend is only searched (no plan: it reads what exists and creates nothing).
    await bestEffort(`DEL in the ${b.name} backend`, async () => void (await b.del(owner)));
  };
  if (other && plan && backend.name === 'nftables') {
    if (!(await backend.del(owner, plan))) await cleanOther();
    return;
  }
  await Promise.all([backend.del(owner, plan), other && cleanOther()]);
}

export function createPlugin(): PluginVerbs {
  return {
    async add(call) {
      const { config } = call;
      const prev = requirePrevResult(call);
      const result = convertResult(prev, config.cniVersion);
      if (config.portMappings.length === 0) return result;
      const plan = planOf(call, prev);
      if (plan.families.length === 0) return result;
      const backend = await backendFor(config);
      await testpoint('add:before-lock');
      let device: Promise<string | undefined> | undefined;
      await withLock(`ADD ${plan.owner.containerID}`, async () => {
        await testpoint('add:locked');
        const applied = backend.add(plan);
        // Looked up while the backend's process runs (backend.add has started it by now).
        device = localnetDevice(plan);
        await applied;
        await testpoint('add:applied');
      });
      const dev = await device;
      await testpoint('add:unlocked');
      await Promise.all([flushUdp(plan), dev ? enableRouteLocalnet(dev) : undefined]);
      await testpoint('add:done');
      return result;
    },

    async del(call) {
      const { config, args } = call;
      const owner = ownerFor(config, args.containerId, args.ifname);
      // With mappings and a prevResult, DEL knows exactly what ADD made; otherwise the backend looks it up.
      let plan: Plan | undefined;
      try {
        if (config.portMappings.length > 0 && config.prevResult !== undefined) plan = planOf(call, requirePrevResult(call));
      } catch (err) {
        log.warn(`ignoring an unusable prevResult on DEL: ${(err as Error).message}`);
      }
      const backend = await backendFor(config);
      const other = otherBackendName(config, backend);
      await testpoint('del:before-lock');
      await withLock(`DEL ${args.containerId}`, async () => {
        await testpoint('del:locked');
        await delEverywhere(backend, other, owner, plan);
        await testpoint('del:applied');
      });
      if (plan) await flushUdp(plan);
    },

    async check(call) {
      const prev = requirePrevResult(call);
      if (call.config.portMappings.length === 0) return;
      const plan = planOf(call, prev);
      if (plan.families.length === 0) return;
      const backend = await backendFor(call.config);
      await backend.check(plan);
      const dev = await localnetDevice(plan);
      if (dev && !(await readRouteLocalnet(dev))) {
        throw new CniError(ErrorCode.Internal, `route_localnet is off on ${dev}`, 'node -> 127.0.0.1:hostPort cannot reach the pod; a new ADD turns it on');
      }
    },

    async gc(call) {
      const { config } = call;
      const valid = validOwnerIds(config.name, config.validAttachments ?? []);
      const backend = await backendFor(config);
      const otherName = otherBackendName(config, backend);
      const other = otherName && (await loadBackend(otherName));
      const attachments = config.validAttachments ?? [];
      await withLock('GC', async () => {
        await Promise.all([
          backend.gc(config.name, valid, attachments, config),
          other && bestEffort(`GC in the ${other.name} backend`, () => other.gc(config.name, valid, attachments)),
        ]);
      });
    },

    async status(call) {
      let backend;
      try {
        backend = await backendFor(call.config);
      } catch (err) {
        if (err instanceof CniError && err.code === ErrorCode.InvalidConfig) throw err;
        throw new CniError(ErrorCode.PluginNotAvailable, (err as Error).message, err instanceof CniError ? err.details : '');
      }
      await backend.status();
    },
  };
}
