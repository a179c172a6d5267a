import * as z from 'zod/mini';
import { CniError, ErrorCode } from './errors.js';
import { type CniVersion, isSupportedVersion, resultFamily } from './versions.js';
import { type Cidr, type Family, ipFamily, isCidr, parseCidr } from '../net/ip.js';

/** A CNI 1.x result, the form every other version is converted to and from. Unknown keys are kept. */
export interface Result {
  cniVersion: string;
  interfaces?: Array<{ name: string; mac?: string; mtu?: number; sandbox?: string; [k: string]: unknown }>;
  ips?: Array<{ address: string; gateway?: string; interface?: number; [k: string]: unknown }>;
  routes?: Array<{ dst: string; gw?: string; [k: string]: unknown }>;
  dns?: Record<string, unknown>;
  [k: string]: unknown;
}

export interface PrevResult {
  /** The version the prevResult was written in (its own cniVersion, else the config's). */
  version: CniVersion;
  /** The prevResult exactly as received. */
  raw: Record<string, unknown>;
  /** The same content as a 1.x result. */
  result: Result;
}

/** The result schemas, built on first use (a call without a prevResult never pays for them). */
function buildSchemas() {
  const cidrString = z.string().check(z.refine(isCidr, 'must be an address with a prefix length, like 10.0.0.2/24'));
  const ipString = z.string().check(z.refine((s) => ipFamily(s) !== undefined, 'must be an IP address'));
  const route = z.looseObject({ dst: cidrString, gw: z.optional(ipString) });
  const dns = z.optional(z.record(z.string(), z.unknown()));
  const iface = z.looseObject({ name: z.string(), mac: z.optional(z.string()), sandbox: z.optional(z.string()) });
  const ipConfigV1 = z.looseObject({
    address: cidrString,
    gateway: z.optional(ipString),
    interface: z.optional(z.int().check(z.gte(0))),
  });
  const resultV1 = z.looseObject({
    interfaces: z.optional(z.array(iface)),
    ips: z.optional(z.array(ipConfigV1)),
    routes: z.optional(z.array(route)),
    dns,
  });
  const ipConfigV04 = z.looseObject({ ...ipConfigV1.shape, version: z.optional(z.enum(['4', '6'])) });
  const resultV04 = z.looseObject({ ...resultV1.shape, ips: z.optional(z.array(ipConfigV04)) });
  const ipConfigV02 = z.looseObject({ ip: cidrString, gateway: z.optional(ipString), routes: z.optional(z.array(route)) });
  const resultV02 = z.looseObject({ ip4: z.optional(ipConfigV02), ip6: z.optional(ipConfigV02), dns });
  return { v1: resultV1, v04: resultV04, v02: resultV02 };
}

let schemas: ReturnType<typeof buildSchemas> | undefined;
const schema = (): ReturnType<typeof buildSchemas> => (schemas ??= buildSchemas());

function fail(reason: string): never {
  throw new CniError(ErrorCode.InvalidConfig, 'could not parse prevResult', reason);
}

function check<T>(schema: z.ZodMiniType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? `prevResult.${issue.path.join('.')}` : 'prevResult';
  return fail(`${where}: ${issue?.message ?? 'invalid'}`);
}

/** Parses a prevResult of any supported version into a 1.x result. */
export function parsePrevResult(raw: unknown, configVersion: CniVersion): PrevResult {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('prevResult must be a JSON object');
  const obj = raw as Record<string, unknown>;
  const declared = obj.cniVersion ?? configVersion;
  if (typeof declared !== 'string' || !isSupportedVersion(declared)) {
    fail(`unsupported prevResult cniVersion ${JSON.stringify(declared)}`);
  }
  const version = declared;
  switch (resultFamily(version)) {
    case 'v1': {
      const r = check(schema().v1, obj);
      return { version, raw: obj, result: { ...r, cniVersion: version } };
    }
    case 'v04': {
      const r = check(schema().v04, obj);
      const ips = r.ips?.map(({ version: _v, ...ip }) => ip);
      return { version, raw: obj, result: { ...r, cniVersion: version, ...(ips ? { ips } : {}) } };
    }
    case 'v02': {
      const r = check(schema().v02, obj);
      const ips: NonNullable<Result['ips']> = [];
      const routes: NonNullable<Result['routes']> = [];
      for (const cfg of [r.ip4, r.ip6]) {
        if (!cfg) continue;
        ips.push({ address: cfg.ip, ...(cfg.gateway ? { gateway: cfg.gateway } : {}) });
        routes.push(...(cfg.routes ?? []));
      }
      const result: Result = { cniVersion: version, ips };
      if (routes.length > 0) result.routes = routes;
      if (r.dns) result.dns = r.dns;
      return { version, raw: obj, result };
    }
  }
}

function nonEmptyDns(d: Result['dns']): d is Record<string, unknown> {
  return d !== undefined && Object.keys(d).length > 0;
}

/** The prevResult as the ADD output in the config's version: unchanged within a version family, converted across. */
export function convertResult(prev: PrevResult, to: CniVersion): Record<string, unknown> {
  const target = resultFamily(to);
  if (resultFamily(prev.version) === target) return { ...prev.raw, cniVersion: to };
  const r = prev.result;
  if (target === 'v1') {
    const { dns: d, ...rest } = r;
    return { ...rest, cniVersion: to, ...(nonEmptyDns(d) ? { dns: d } : {}) };
  }
  if (target === 'v04') {
    const out: Record<string, unknown> = { cniVersion: to };
    if (r.interfaces) out.interfaces = r.interfaces;
    if (r.ips) {
      out.ips = r.ips.map((ip) => ({ version: String(parseCidr(ip.address).family), ...ip }));
    }
    if (r.routes) out.routes = r.routes;
    out.dns = r.dns ?? {};
    return out;
  }
  // 0.1.0 / 0.2.0: the first address of each family, routes split by destination family.
  const out: Record<string, unknown> = { cniVersion: to };
  for (const fam of [4, 6] as const) {
    const ip = r.ips?.find((i) => parseCidr(i.address).family === fam);
    if (!ip) continue;
    const routes = (r.routes ?? []).filter((rt) => parseCidr(rt.dst).family === fam);
    out[`ip${fam}`] = {
      ip: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
      ...(routes.length > 0 ? { routes } : {}),
    };
  }
  out.dns = r.dns ?? {};
  return out;
}

/** The container's addresses: first IPv4 and first IPv6 on the sandbox interface named ifname. */
export type ContainerAddresses = Partial<Record<Family, Cidr>>;

export function containerAddresses(result: Result, ifname: string): ContainerAddresses {
  const out: ContainerAddresses = {};
  const interfaces = result.interfaces ?? [];
  for (const ip of result.ips ?? []) {
    if (ip.interface !== undefined && ip.interface < interfaces.length) {
      const itf = interfaces[ip.interface];
      if (!itf || itf.name !== ifname || !itf.sandbox) continue;
    }
    const cidr = parseCidr(ip.address);
    out[cidr.family] ??= cidr;
  }
  return out;
}
