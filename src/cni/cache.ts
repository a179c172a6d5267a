/**
 * The libcni result cache (pure): every runtime built on libcni (containerd's go-cni, CRI-O's ocicni,
 * podman's CNI mode) writes `<cacheDir>/results/<network>-<containerID>-<ifname>` after a successful ADD
 * of a network list and removes it on DEL. Format (libcni/api.go, type cachedInfo, kind "cniCacheV1"):
 *
 *   { "kind": "cniCacheV1", "containerId": "...", "config": "<base64 of the network list>",
 *     "ifName": "eth0", "networkName": "...", "cniArgs": [["K", "V"], ...],
 *     "capabilityArgs": {"portMappings": [...]}, "result": {<the list's final result>} }
 *
 * Releases after Debian's 1.1 also store "netns"; older ones leave only the result's interface
 * `sandbox`. `portmap restore` adopts attachments from it, `portmap doctor` audits against it.
 */
import * as z from 'zod/mini';
import { isObject } from './json.js';

export const CNI_CACHE_KIND = 'cniCacheV1';
export const DEFAULT_CNI_CACHE_DIR = '/var/lib/cni/results';

export interface CacheEntry {
  containerId: string;
  ifName: string;
  networkName: string;
  /** The pod's network namespace: `netns`, else the sandbox of the result's interface named ifName. */
  netns?: string;
  /** capabilityArgs.portMappings as the runtime passed them (validated later by the plugin's schema). */
  portMappings: unknown[];
  /** The network list (or single network config) the runtime ran, decoded. */
  config?: Record<string, unknown>;
  configError?: string;
  result?: Record<string, unknown>;
  cniArgs: Array<[string, string]>;
}

const cacheSchema = z.looseObject({
  kind: z.string(),
  containerId: z.string(),
  config: z.optional(z.nullable(z.string())),
  ifName: z.string(),
  networkName: z.string(),
  netns: z.optional(z.nullable(z.string())),
  cniArgs: z.optional(z.nullable(z.array(z.tuple([z.string(), z.string()])))),
  capabilityArgs: z.optional(z.nullable(z.record(z.string(), z.unknown()))),
  result: z.optional(z.nullable(z.record(z.string(), z.unknown()))),
});

function sandboxOf(result: Record<string, unknown> | undefined, ifName: string): string | undefined {
  const ifs = result?.interfaces;
  if (!Array.isArray(ifs)) return undefined;
  for (const i of ifs) {
    if (isObject(i) && i.name === ifName && typeof i.sandbox === 'string' && i.sandbox !== '') return i.sandbox;
  }
  return undefined;
}

/** Parses one cache file; throws when it is not a cniCacheV1 entry. */
export function parseCacheEntry(text: string): CacheEntry {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`, { cause: err });
  }
  const p = cacheSchema.safeParse(value);
  if (!p.success) throw new Error(`not a libcni cache entry: ${p.error.issues[0]?.path.join('.') ?? ''} ${p.error.issues[0]?.message ?? ''}`);
  const c = p.data;
  if (c.kind !== CNI_CACHE_KIND) throw new Error(`unknown cache kind ${JSON.stringify(c.kind)}`);
  const result = c.result ?? undefined;
  const out: CacheEntry = {
    containerId: c.containerId,
    ifName: c.ifName,
    networkName: c.networkName,
    portMappings: Array.isArray(c.capabilityArgs?.portMappings) ? (c.capabilityArgs.portMappings as unknown[]) : [],
    cniArgs: (c.cniArgs ?? []) as Array<[string, string]>,
    ...(result ? { result } : {}),
  };
  const netns = c.netns || sandboxOf(result, c.ifName);
  if (netns) out.netns = netns;
  if (c.config) {
    try {
      const conf: unknown = JSON.parse(Buffer.from(c.config, 'base64').toString('utf8'));
      if (isObject(conf)) out.config = conf;
      else out.configError = 'the cached network configuration is not a JSON object';
    } catch (err) {
      out.configError = `the cached network configuration is not JSON: ${(err as Error).message}`;
    }
  }
  return out;
}

export interface PortmapInList {
  /** The portmap plugin entry of the list, when there is one. */
  plugin?: Record<string, unknown>;
  /** It declares "capabilities": {"portMappings": true}. */
  capability: boolean;
  /** The list's cniVersion. */
  cniVersion?: string;
}

/** Finds the portmap plugin in a network list (or a single network config) (pure). */
export function portmapInList(config: Record<string, unknown> | undefined): PortmapInList {
  if (!config) return { capability: false };
  const plugins = Array.isArray(config.plugins) ? config.plugins : [config];
  const cniVersion = typeof config.cniVersion === 'string' ? config.cniVersion : undefined;
  for (const p of plugins) {
    if (!isObject(p) || p.type !== 'portmap') continue;
    const caps = isObject(p.capabilities) ? p.capabilities : {};
    return { plugin: p, capability: caps.portMappings === true, ...(cniVersion ? { cniVersion } : {}) };
  }
  return { capability: false, ...(cniVersion ? { cniVersion } : {}) };
}

/**
 * The configuration portmap received for a cached attachment: its own plugin entry with the list's
 * name and version, the runtime's mappings and the final result as prevResult (the same result a
 * chained plugin after it would see; the addresses of the pod are what matters). For parseConfig.
 */
export function portmapConfigOf(entry: CacheEntry): Record<string, unknown> | undefined {
  const found = portmapInList(entry.config);
  if (!found.plugin) return undefined;
  const rc = isObject(found.plugin.runtimeConfig) ? found.plugin.runtimeConfig : {};
  return {
    ...found.plugin,
    name: entry.networkName,
    cniVersion: found.cniVersion ?? found.plugin.cniVersion ?? '0.1.0',
    runtimeConfig: { ...rc, portMappings: entry.portMappings },
    ...(entry.result ? { prevResult: entry.result } : {}),
  };
}
