import * as z from 'zod/mini';
import { CniError, ErrorCode, invalidConfig } from '../cni/errors.js';
import { type CniVersion, requireSupportedVersion } from '../cni/versions.js';
import type { LogSettings } from '../host/log.js';
import { LOG_FORMATS, LOG_LEVELS } from '../host/log-format.js';
import { type Cidr, canonicalIp, ipFamily, isCidr, parseCidr } from '../net/ip.js';
import { isObject } from '../cni/json.js';

export type Protocol = 'tcp' | 'udp' | 'sctp';
export type BackendName = 'nftables' | 'iptables';

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
  /** Canonical host address; undefined when empty (every local address of both families). */
  hostIP?: string;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

export interface PortmapConfig {
  cniVersion: CniVersion;
  name: string;
  backend?: BackendName;
  snat: boolean;
  masqAll: boolean;
  markMasqBit: number;
  externalSetMarkChain?: string;
  conditionsV4?: string[];
  conditionsV6?: string[];
  afterServices: boolean;
  serviceCIDRs: Cidr[];
  portMappings: PortMapping[];
  prevResult?: unknown;
  /** Where attachment records are kept (`dataDir`); undefined: DEFAULT_DATA_DIR. */
  dataDir?: string;
  /** Where and how this call logs (`logFile`, `logLevel`, `logFormat`, `logMaxSize`; host/log.ts). */
  log: LogSettings;
  /** GC only: the attachments that are still valid (`cni.dev/valid-attachments`, or the older `cni.dev/attachments`). */
  validAttachments?: Attachment[];
}

export const DEFAULT_MARK_MASQ_BIT = 13;
/** The records of attachments (`dataDir`), like host-local's /var/lib/cni/networks. */
export const DEFAULT_DATA_DIR = '/var/lib/cni/portmap';

/** The keys of a portmap entry. */
export const TOP_LEVEL_KEYS = [
  'cniVersion', 'name', 'type', 'backend', 'snat', 'masqAll', 'markMasqBit', 'externalSetMarkChain',
  'conditionsV4', 'conditionsV6', 'afterServices', 'serviceCIDRs', 'runtimeConfig', 'prevResult',
  'dataDir', 'logFile', 'logLevel', 'logFormat', 'logMaxSize',
];
const RUNTIME_CONFIG_KEYS = ['portMappings'];
const MAPPING_KEYS = ['hostPort', 'containerPort', 'protocol', 'hostIP'];

/**
 * Renames keys that match a known key in another letter case (containerd sends `HostPort`), the way
 * Go's encoding/json matches them: an exact key wins over a case-folded one.
 */
export function canonicalKeys(obj: Record<string, unknown>, known: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const byLower = new Map(known.map((k) => [k.toLowerCase(), k]));
  for (const [key, value] of Object.entries(obj)) {
    const canonical = byLower.get(key.toLowerCase());
    if (canonical === undefined) out[key] = value;
    else if (key === canonical || !(canonical in obj)) out[canonical] = value;
  }
  return out;
}

/**
 * Mappings per attachment: one per host port. A range publish (`-p 40000-56383:40000-56383/udp`) arrives
 * as one mapping per port and becomes one interval in the kernel (portmap/ranges.ts); a longer list is
 * refused before any of it is looked at, so validation stays bounded (stdin itself is at most 16 MiB).
 */
export const MAX_PORT_MAPPINGS = 65_535;
const TOO_MANY = `at most ${MAX_PORT_MAPPINGS} port mappings`;

/** Tokens of conditionsV4/V6: words without quotes, whitespace, comment or statement separators. */
const CONDITION_TOKEN = /^[A-Za-z0-9_.:/,!=<>{}[\]@*+-]+$/;
const CHAIN_NAME = /^[A-Za-z0-9_-]{1,28}$/;

const port = (what: string) =>
  z.int(`Invalid ${what} port number (must be an integer from 1 to 65535)`).check(
    z.gte(1, `Invalid ${what} port number (must be an integer from 1 to 65535)`),
    z.lte(65535, `Invalid ${what} port number (must be an integer from 1 to 65535)`),
  );

const mappingSchema = z.object({
  hostPort: port('host'),
  containerPort: port('container'),
  protocol: z.optional(
    z.pipe(
      z.string('protocol must be one of tcp, udp, sctp'),
      z.transform((p) => (p === '' ? 'tcp' : p.toLowerCase())),
    ).check(z.refine((p) => ['tcp', 'udp', 'sctp'].includes(p), 'protocol must be one of tcp, udp, sctp')),
  ),
  hostIP: z.optional(
    z.nullable(
      z.string('hostIP must be an IPv4 or IPv6 address').check(
        // A zone index (fe80::1%eth0) is not a host address nft or iptables can match.
        z.refine((s) => s === '' || (ipFamily(s) !== undefined && !s.includes('%')), 'hostIP must be an IPv4 or IPv6 address, or empty'),
      ),
    ),
  ),
});

type ParsedMapping = z.infer<typeof mappingSchema>;

const PROTOCOLS = new Set(['tcp', 'udp', 'sctp']);
const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;

/**
 * The common valid mapping, checked by hand: zod costs some 8 us a mapping, 140 ms for a range of 16,384
 * ports. The same rules as mappingSchema; undefined for anything else, which mappingSchema then reports.
 */
function quickMapping(m: unknown): PortMapping | undefined {
  if (!isObject(m)) return undefined;
  const { hostPort, containerPort, protocol, hostIP } = m;
  if (!isPort(hostPort) || !isPort(containerPort)) return undefined;
  let p: string = 'tcp';
  if (protocol !== undefined) {
    if (typeof protocol !== 'string') return undefined;
    p = protocol === 'udp' || protocol === 'tcp' || protocol === 'sctp' ? protocol : protocol === '' ? 'tcp' : protocol.toLowerCase();
    if (!PROTOCOLS.has(p)) return undefined;
  }
  if (hostIP === undefined || hostIP === null || hostIP === '') return { hostPort, containerPort, protocol: p as Protocol };
  if (typeof hostIP !== 'string' || hostIP.includes('%') || ipFamily(hostIP) === undefined) return undefined;
  return { hostPort, containerPort, protocol: p as Protocol, hostIP: canonicalIp(hostIP) };
}

/** A mapping as zod parsed it, in the shape the plan reads. */
function toPortMapping(m: ParsedMapping): PortMapping {
  const hostIP = m.hostIP ? canonicalIp(m.hostIP) : undefined;
  return { hostPort: m.hostPort, containerPort: m.containerPort, protocol: (m.protocol ?? 'tcp') as Protocol, ...(hostIP ? { hostIP } : {}) };
}

/** Validates the mappings (after normalize); the first invalid one is reported as zod words it. */
function parseMappings(list: readonly unknown[]): PortMapping[] {
  const out: PortMapping[] = new Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const quick = quickMapping(list[i]);
    if (quick) {
      out[i] = quick;
      continue;
    }
    const parsed = mappingSchema.safeParse(list[i]);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = ['runtimeConfig', 'portMappings', i, ...issue.path];
      throw invalidConfig(`invalid value for ${formatPath(path)}: ${preview(valueAt(list[i], issue.path))}`, issue.message);
    }
    out[i] = toPortMapping(parsed.data);
  }
  return out;
}

const conditions = z.optional(
  z.nullable(
    z.array(
      z.string('conditions must be a list of strings').check(
        z.refine((t) => t === '' || CONDITION_TOKEN.test(t), 'condition tokens may not contain quotes, whitespace, ";" or "#"'),
      ),
    ).check(z.maxLength(64, 'at most 64 condition tokens')),
  ),
);

/** An absolute, normalised, printable path: it becomes a directory or file we create and write under. */
const isSafePath = (s: string): boolean =>
  s.startsWith('/') && /^[\x20-\x7e\u00a0-\uffff]*$/.test(s) && !s.split('/').some((p) => p === '.' || p === '..');

/** The smallest `logMaxSize`: a rotation per few hundred calls at most. */
export const MIN_LOG_MAX_SIZE = 64 * 1024;

/**
 * The logging keys, each checked on its own and by hand (zod schemas cost start-up time on every call):
 * parseConfig refuses an invalid one (code 7), and logSettingsOf reads the valid ones of a
 * configuration that fails elsewhere, so that its failure is logged where the configuration says.
 * A check gives the value to keep (undefined: none) or throws the `details` of the refusal.
 */
const oneOf = (key: string, allowed: readonly string[]) => (v: unknown): string | undefined => {
  const why = `${key} must be one of ${allowed.join(', ')}`;
  if (typeof v !== 'string') throw new Error(why);
  const lower = v.toLowerCase();
  if (!allowed.includes(lower)) throw new Error(why);
  return lower;
};

const LOG_KEY_CHECKS = {
  logFile: (v: unknown): string | undefined => {
    if (typeof v !== 'string') throw new Error('logFile must be a file path');
    if (v === '') return undefined;
    if (!isSafePath(v) || v.endsWith('/')) throw new Error('logFile must be an absolute file path without "." or ".." parts');
    if (v.length > 1024) throw new Error('logFile is longer than 1024 characters');
    return v;
  },
  logLevel: oneOf('logLevel', LOG_LEVELS),
  logFormat: oneOf('logFormat', LOG_FORMATS),
  logMaxSize: (v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new Error(`logMaxSize must be a whole number of bytes, at least ${MIN_LOG_MAX_SIZE}`);
    if (v < MIN_LOG_MAX_SIZE) throw new Error(`logMaxSize must be a whole number of bytes, at least ${MIN_LOG_MAX_SIZE} (64 KiB)`);
    return v;
  },
};

type LogKey = keyof typeof LOG_KEY_CHECKS;
const LOG_KEYS = Object.keys(LOG_KEY_CHECKS) as LogKey[];
const LOG_SETTING: Record<LogKey, keyof LogSettings> = { logFile: 'file', logLevel: 'level', logFormat: 'format', logMaxSize: 'maxSize' };

/** The logging keys of a normalised configuration; `strict`: the first invalid one is a code 7 error. */
function readLogKeys(top: Record<string, unknown>, strict: boolean): LogSettings {
  const out: Record<string, unknown> = {};
  for (const key of LOG_KEYS) {
    const v = top[key];
    if (v === undefined || v === null) continue;
    let value: unknown;
    try {
      value = LOG_KEY_CHECKS[key](v);
    } catch (err) {
      if (strict) throw invalidConfig(`invalid value for ${key}: ${preview(v)}`, (err as Error).message);
      continue;
    }
    if (value !== undefined) out[LOG_SETTING[key]] = value;
  }
  return out as LogSettings;
}

/** The valid logging keys of a configuration, whatever else it holds (invalid ones are left out). */
export function logSettingsOf(raw: Record<string, unknown>): LogSettings {
  return readLogKeys(canonicalKeys(raw, TOP_LEVEL_KEYS), false);
}

const optionalBool = (what: string) => z.optional(z.nullable(z.boolean(`${what} must be true or false`)));

const configSchema = z.object({
  cniVersion: z.optional(z.string()),
  name: z.string(),
  backend: z.optional(z.nullable(z.string('backend must be a string'))),
  snat: optionalBool('snat'),
  masqAll: optionalBool('masqAll'),
  markMasqBit: z.optional(z.nullable(z.int('markMasqBit must be an integer'))),
  externalSetMarkChain: z.optional(
    z.nullable(
      z.string('externalSetMarkChain must be a chain name').check(
        z.refine((s) => CHAIN_NAME.test(s), 'externalSetMarkChain must be 1-28 letters, digits, "_" or "-"'),
      ),
    ),
  ),
  conditionsV4: conditions,
  conditionsV6: conditions,
  afterServices: optionalBool('afterServices'),
  serviceCIDRs: z.optional(
    z.nullable(
      z.array(
        z.string('serviceCIDRs entries must be CIDR strings').check(
          z.refine(isCidr, 'serviceCIDRs entries must be CIDRs like 10.96.0.0/12'),
        ),
      ).check(z.maxLength(64, 'at most 64 serviceCIDRs')),
    ),
  ),
  dataDir: z.optional(
    z.nullable(
      z.string('dataDir must be a directory path').check(
        // Absolute, normalised, printable: it becomes a directory we create and write under.
        z.refine((s) => s === '' || isSafePath(s), 'dataDir must be an absolute path without "." or ".." parts'),
        z.maxLength(1024, 'dataDir is longer than 1024 characters'),
      ),
    ),
  ),
  runtimeConfig: z.optional(
    z.nullable(
      z.looseObject({ portMappings: z.optional(z.nullable(z.custom<unknown[]>((v) => Array.isArray(v), 'Invalid input: expected array'))) }),
    ),
  ),
  prevResult: z.optional(z.unknown()),
});

function valueAt(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null) return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, k) => (typeof k === 'number' ? `${acc}[${k}]` : acc ? `${acc}.${String(k)}` : String(k)), '');
}

const preview = (v: unknown): string => {
  const text = v === undefined ? 'missing' : JSON.stringify(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};

/** Whether a mapping's keys need no renaming (the common case: a runtime's own JSON). */
function canonicalOnly(m: Record<string, unknown>): boolean {
  for (const k in m) if (k !== 'hostPort' && k !== 'containerPort' && k !== 'protocol' && k !== 'hostIP') return false;
  return true;
}

function normalize(raw: Record<string, unknown>): Record<string, unknown> {
  const top = canonicalKeys(raw, TOP_LEVEL_KEYS);
  if (isObject(top.runtimeConfig)) {
    const rc = canonicalKeys(top.runtimeConfig, RUNTIME_CONFIG_KEYS);
    if (Array.isArray(rc.portMappings)) {
      if (rc.portMappings.length > MAX_PORT_MAPPINGS) {
        throw invalidConfig(`invalid value for runtimeConfig.portMappings: ${rc.portMappings.length} mappings`, TOO_MANY);
      }
      const list = rc.portMappings;
      // Renamed only when some mapping needs it (a runtime's own JSON has the canonical keys).
      if (list.some((m) => isObject(m) && !canonicalOnly(m))) {
        rc.portMappings = list.map((m) => (isObject(m) ? canonicalKeys(m, MAPPING_KEYS) : m));
      }
    }
    top.runtimeConfig = rc;
  }
  return top;
}

function parseAttachments(raw: Record<string, unknown>): Attachment[] | undefined {
  const value = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (value === undefined || value === null) return undefined;
  const list = z.array(z.object({ containerID: z.string(), ifname: z.string() })).safeParse(value);
  if (!list.success) {
    throw invalidConfig('invalid cni.dev/valid-attachments', 'expected a list of {"containerID": string, "ifname": string}');
  }
  return list.data;
}

/**
 * Validates and normalizes the plugin configuration from stdin (already JSON-decoded).
 * Every error is a CNI error with code 7 that names the field and the value.
 */
export function parseConfig(raw: Record<string, unknown>): PortmapConfig {
  const input = normalize(raw);
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = formatPath(issue.path);
    throw invalidConfig(`invalid value for ${field}: ${preview(valueAt(input, issue.path))}`, issue.message);
  }
  const c = parsed.data;
  const log = readLogKeys(input, true);
  // A missing cniVersion is 0.1.0, as in the reference skel and libcni.
  const cniVersion = requireSupportedVersion(c.cniVersion || '0.1.0');

  if (c.markMasqBit !== undefined && c.markMasqBit !== null && c.externalSetMarkChain) {
    throw invalidConfig('Cannot specify externalSetMarkChain and markMasqBit', 'remove one of the two options');
  }
  const markMasqBit = c.markMasqBit ?? DEFAULT_MARK_MASQ_BIT;
  if (markMasqBit < 0 || markMasqBit > 31) {
    throw invalidConfig(`invalid value for markMasqBit: ${markMasqBit}`, 'MasqMarkBit must be between 0 and 31');
  }
  let backend: BackendName | undefined;
  if (c.backend !== undefined && c.backend !== null) {
    if (c.backend !== 'nftables' && c.backend !== 'iptables') {
      throw invalidConfig(`unrecognized backend ${JSON.stringify(c.backend)}`, 'backend must be "nftables" or "iptables"');
    }
    backend = c.backend;
  }

  const portMappings = parseMappings(c.runtimeConfig?.portMappings ?? []);

  const config: PortmapConfig = {
    cniVersion,
    name: c.name,
    snat: c.snat ?? true,
    masqAll: c.masqAll ?? false,
    markMasqBit,
    afterServices: c.afterServices ?? false,
    serviceCIDRs: (c.serviceCIDRs ?? []).map(parseCidr),
    portMappings,
    log,
  };
  if (backend) config.backend = backend;
  if (c.dataDir) config.dataDir = c.dataDir.replace(/\/+$/, '');
  if (c.externalSetMarkChain) config.externalSetMarkChain = c.externalSetMarkChain;
  const v4 = nonEmptyConditions(c.conditionsV4);
  const v6 = nonEmptyConditions(c.conditionsV6);
  if (v4) config.conditionsV4 = v4;
  if (v6) config.conditionsV6 = v6;
  if (c.prevResult !== undefined && c.prevResult !== null) config.prevResult = c.prevResult;
  const attachments = parseAttachments(raw);
  if (attachments) config.validAttachments = attachments;
  if (backend) checkBackendOptions(config, backend);
  return config;
}

function nonEmptyConditions(list: string[] | null | undefined): string[] | undefined {
  if (!list || list.length === 0 || (list.length === 1 && list[0] === '')) return undefined;
  return list;
}

/** Which backend a conditions list is written for: iptables syntax starts with "-" or "!". */
export function conditionsBackend(list: readonly string[] | null | undefined): BackendName | undefined {
  const first = nonEmptyConditions(list ? [...list] : undefined)?.[0];
  if (first === undefined || first === '') return undefined;
  return first.startsWith('-') || first.startsWith('!') ? 'iptables' : 'nftables';
}

/** Rejects options that belong to the other backend (the reference's message and list order). */
export function checkBackendOptions(
  c: { externalSetMarkChain?: string | null; conditionsV4?: string[] | null; conditionsV6?: string[] | null },
  backend: string,
): void {
  const foreign: string[] = [];
  const other = backend === 'iptables' ? 'nftables' : 'iptables';
  if (c.externalSetMarkChain && other === 'iptables') foreign.push('externalSetMarkChain');
  if (conditionsBackend(c.conditionsV4) === other) foreign.push('conditionsV4');
  if (conditionsBackend(c.conditionsV6) === other) foreign.push('conditionsV6');
  if (foreign.length > 0) {
    throw new CniError(
      ErrorCode.InvalidConfig,
      `${backend} backend was requested but configuration contains ${other}-specific options [${foreign.join(' ')}]`,
      `remove ${foreign.join(', ')} or set "backend": "${other}"`,
    );
  }
}
