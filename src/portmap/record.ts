/**
 * The record of one attachment (pure): what ADD programmed, in a form that re-creates the same rules
 * after a firewall reload wiped them (`portmap restore`, self-healing). It holds the plan (the forwards,
 * pod addresses and the settings that shape the rules), the backend that made them, and the pod's
 * network namespace (path, identity and boot) so that only attachments of live pods are restored.
 *
 * Stored as one small JSON file per attachment (see plugin/records.ts); validated with zod/mini when
 * read, so a damaged or hand-edited file never reaches a rule.
 */
import * as z from 'zod/mini';
import { K8S_NAME, type PodName } from '../cni/env.js';
import type { BackendName } from './config.js';
import { ipFamily, parseCidr } from '../net/ip.js';
import { attachmentName, ownerOf } from './owner.js';
import type { FamilyPlan, Forward, Plan } from './plan.js';

export const RECORD_VERSION = 1;

export interface RecordedNetns {
  /** CNI_NETNS as the runtime gave it. */
  path: string;
  /** Its nsfs identity at ADD time (undefined if it could not be opened). */
  dev?: number;
  ino?: number;
}

export interface RecordedFamily {
  family: 4 | 6;
  /** The pod address with its prefix length, "10.244.0.5/24". */
  pod: string;
  forwards: Forward[];
  masquerade: FamilyPlan['masquerade'];
  localhost: boolean;
  conditions?: string[];
}

export interface AttachmentRecord {
  v: typeof RECORD_VERSION;
  backend: BackendName;
  network: string;
  containerID: string;
  ifname: string;
  netns: RecordedNetns;
  /** /proc/sys/kernel/random/boot_id of the boot that made it. */
  bootId: string;
  /** ms since the epoch */
  created: number;
  /** Made by `portmap restore` from the runtime's libcni cache (the pod was started without a record). */
  adopted?: boolean;
  /** The Kubernetes pod CNI_ARGS named, for `list`, doctor and the log. */
  pod?: PodName;
  families: RecordedFamily[];
  afterServices: boolean;
  serviceCIDRs: string[];
  markMasqBit: number;
  externalSetMarkChain?: string;
}

// The same character rules as the CNI layer (network names, container ids, interface names, conditions).
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const IFNAME = /^[^/:\s]{1,15}$/;
const CONDITION_TOKEN = /^[A-Za-z0-9_.:/,!=<>{}[\]@*+-]+$/;
const CHAIN_NAME = /^[A-Za-z0-9_-]{1,28}$/;

// The shape only: parseRecord parses each address once (parseCidr is the costly part of reading 1,000).
const CIDR = /^[0-9a-fA-F.:]+\/\d{1,3}$/;

/** Built on first read only: an ADD writes records and never parses one. */
function buildSchema() {
  const port = z.int().check(z.gte(1), z.lte(65535));
  const forwardSchema = z.object({
    protocol: z.enum(['tcp', 'udp', 'sctp']),
    hostPort: port,
    containerPort: port,
    hostIP: z.optional(z.string().check(z.refine((s) => ipFamily(s) !== undefined, 'hostIP must be an address'))),
  });

  const familySchema = z.object({
    family: z.union([z.literal(4), z.literal(6)]),
    pod: z.string().check(z.regex(CIDR, 'pod must be an address with a prefix length')),
    forwards: z.array(forwardSchema).check(z.minLength(1), z.maxLength(65_535)),
    masquerade: z.enum(['none', 'hairpin', 'all']),
    localhost: z.boolean(),
    conditions: z.optional(z.array(z.string().check(z.regex(CONDITION_TOKEN))).check(z.maxLength(64))),
  });

  const recordSchema = z.object({
    v: z.literal(RECORD_VERSION),
    backend: z.enum(['nftables', 'iptables']),
    network: z.string().check(z.regex(NAME)),
    containerID: z.string().check(z.regex(NAME)),
    ifname: z.string().check(z.regex(IFNAME), z.refine((s) => s !== '.' && s !== '..')),
    netns: z.object({ path: z.string(), dev: z.optional(z.int()), ino: z.optional(z.int()) }),
    bootId: z.string(),
    created: z.number(),
    adopted: z.optional(z.boolean()),
    pod: z.optional(z.object({ namespace: z.string().check(z.regex(K8S_NAME)), name: z.string().check(z.regex(K8S_NAME)) })),
    families: z.array(familySchema).check(z.minLength(1), z.maxLength(2)),
    afterServices: z.boolean(),
    serviceCIDRs: z.array(z.string().check(z.regex(CIDR, 'serviceCIDRs must be CIDRs'))).check(z.maxLength(64)),
    markMasqBit: z.int().check(z.gte(0), z.lte(31)),
    externalSetMarkChain: z.optional(z.string().check(z.regex(CHAIN_NAME))),
  });
  return recordSchema;
}

let schema: ReturnType<typeof buildSchema> | undefined;

/** Validates a decoded record file; throws with the first problem. */
export function parseRecord(value: unknown): AttachmentRecord {
  schema ??= buildSchema();
  const r = schema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new Error(`invalid record: ${issue.path.map(String).join('.') || '(top)'}: ${issue.message}`);
  }
  const rec = r.data as AttachmentRecord;
  const cidr = (text: string, what: string) => {
    try {
      return parseCidr(text);
    } catch {
      throw new Error(`invalid record: ${what} ${JSON.stringify(text)} is not an address with a prefix length`);
    }
  };
  for (const f of rec.families) {
    if (cidr(f.pod, 'pod').family !== f.family) throw new Error(`invalid record: pod ${f.pod} is not IPv${f.family}`);
  }
  for (const c of rec.serviceCIDRs) cidr(c, 'serviceCIDR');
  return rec;
}

export interface RecordContext {
  backend: BackendName;
  netns: RecordedNetns;
  bootId: string;
  now: number;
  adopted?: boolean;
  pod?: PodName;
}

/** The record of a plan that `backend` programmed (pure). */
export function recordOf(plan: Plan, ctx: RecordContext): AttachmentRecord {
  const families: RecordedFamily[] = plan.families.map((fp) => ({
    family: fp.family,
    pod: `${fp.pod.address}/${fp.pod.prefixLength}`,
    forwards: fp.forwards.map((f) => ({ ...f })),
    masquerade: fp.masquerade,
    localhost: fp.localhost,
    ...(fp.conditions ? { conditions: [...fp.conditions] } : {}),
  }));
  return {
    v: RECORD_VERSION,
    backend: ctx.backend,
    network: plan.owner.network,
    containerID: plan.owner.containerID,
    ifname: plan.owner.ifname,
    netns: ctx.netns,
    bootId: ctx.bootId,
    created: ctx.now,
    ...(ctx.adopted ? { adopted: true } : {}),
    ...(ctx.pod ? { pod: { namespace: ctx.pod.namespace, name: ctx.pod.name } } : {}),
    families,
    afterServices: plan.afterServices,
    serviceCIDRs: plan.serviceCIDRs.map((c) => `${c.address}/${c.prefixLength}`),
    markMasqBit: plan.markMasqBit,
    ...(plan.externalSetMarkChain ? { externalSetMarkChain: plan.externalSetMarkChain } : {}),
  };
}

/** The plan a record re-creates (pure): the same owner, forwards and settings as the ADD that wrote it. */
export function planOfRecord(rec: AttachmentRecord): Plan {
  return {
    owner: ownerOf(rec.network, rec.containerID, rec.ifname),
    families: rec.families.map((f) => ({
      family: f.family,
      pod: parseCidr(f.pod),
      forwards: f.forwards.map((x) => ({ ...x })),
      masquerade: f.masquerade,
      localhost: f.localhost,
      ...(f.conditions ? { conditions: [...f.conditions] } : {}),
    })),
    afterServices: rec.afterServices,
    serviceCIDRs: rec.serviceCIDRs.map(parseCidr),
    markMasqBit: rec.markMasqBit,
    ...(rec.externalSetMarkChain ? { externalSetMarkChain: rec.externalSetMarkChain } : {}),
  };
}

/** The owner id a record file is named by. */
export const recordId = (rec: Pick<AttachmentRecord, 'network' | 'containerID' | 'ifname'>): string =>
  ownerOf(rec.network, rec.containerID, rec.ifname).id;

/** "network/containerID/ifname" */
export const recordName = (rec: Pick<AttachmentRecord, 'network' | 'containerID' | 'ifname'>): string => attachmentName(rec);

/**
 * The node-wide settings to restore with: those of the newest record (the README's rule: the last ADD's
 * values of afterServices and serviceCIDRs apply).
 */
export function newestRecord<T extends Pick<AttachmentRecord, 'created'>>(records: readonly T[]): T | undefined {
  let best: T | undefined;
  for (const r of records) if (!best || r.created >= best.created) best = r;
  return best;
}
