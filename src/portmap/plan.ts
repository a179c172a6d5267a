import type { Attachment, PortmapConfig, Protocol } from './config.js';
import { invalidConfig } from '../cni/errors.js';
import type { ContainerAddresses } from '../cni/result.js';
import { type Cidr, type Family, ipFamily, isUnspecified } from '../net/ip.js';
import { type Owner, ownerOf } from './owner.js';

/** One forwarded port of one family: (hostIP?, protocol, hostPort) -> (pod, containerPort). */
export interface Forward {
  protocol: Protocol;
  hostPort: number;
  containerPort: number;
  /** Only this host address; undefined means every local address of the family. */
  hostIP?: string;
}

export type Masquerade = 'none' | 'hairpin' | 'all';

export interface FamilyPlan {
  family: Family;
  /** The pod's address with its subnet (the hairpin source range). */
  pod: Cidr;
  forwards: Forward[];
  /** none: snat off; hairpin: the pod's subnet (and 127.0.0.0/8 for IPv4) to the pod; all: masqAll. */
  masquerade: Masquerade;
  /** IPv4 with snat and without masqAll: node -> 127.0.0.1:hostPort works (route_localnet). */
  localhost: boolean;
  /** Backend-syntax conditions that apply to this attachment's forwards. */
  conditions?: string[];
}

/** Everything a backend needs to program one attachment: the pure output of config + prevResult. */
export interface Plan {
  owner: Owner;
  families: FamilyPlan[];
  afterServices: boolean;
  serviceCIDRs: Cidr[];
  /** iptables only */
  markMasqBit: number;
  externalSetMarkChain?: string;
}

const PROTOCOL_INDEX: Record<string, number> = { tcp: 0, udp: 1, sctp: 2 };

/** A forward's identity: a number without hostIP (most of them: no string per forward), else a string. */
const keyOf = (f: Forward): number | string =>
  f.hostIP === undefined ? PROTOCOL_INDEX[f.protocol]! * 65536 + f.hostPort : `${f.hostIP} ${f.protocol} ${f.hostPort}`;

/**
 * The forwards that apply to a family: a hostIP of the other family is skipped, unspecified means all.
 * A key given twice counts once (in its first place); twice with different container ports is an error.
 * Keys without a hostIP are looked up in a typed array: a range publish sends thousands of them.
 */
export function forwardsFor(config: PortmapConfig, family: Family): Forward[] {
  const out: Forward[] = [];
  /** (protocol, hostPort) -> index + 1 in out, for forwards on every address */
  const wildcard = new Int32Array(3 * 65536);
  const withHostIP = new Map<string, number>();
  for (const m of config.portMappings) {
    if (m.hostIP && ipFamily(m.hostIP) !== family) continue;
    const f: Forward = { protocol: m.protocol, hostPort: m.hostPort, containerPort: m.containerPort };
    if (m.hostIP && !isUnspecified(m.hostIP)) f.hostIP = m.hostIP;
    const key = keyOf(f);
    const at = typeof key === 'number' ? wildcard[key]! : (withHostIP.get(key) ?? 0);
    if (at === 0) {
      out.push(f);
      if (typeof key === 'number') wildcard[key] = out.length;
      else withHostIP.set(key, out.length);
      continue;
    }
    const seen = out[at - 1]!;
    if (seen.containerPort !== f.containerPort) {
      throw invalidConfig(
        `duplicate port mapping for ${f.protocol} host port ${f.hostPort}${f.hostIP ? ` on ${f.hostIP}` : ''}`,
        `container ports ${seen.containerPort} and ${f.containerPort} both claim it`,
      );
    }
  }
  return out;
}

export function ownerFor(config: PortmapConfig, containerID: string, ifname: string): Owner {
  return ownerOf(config.name, containerID, ifname);
}

export function buildPlan(config: PortmapConfig, owner: Owner, addresses: ContainerAddresses): Plan {
  const families: FamilyPlan[] = [];
  for (const family of [4, 6] as const) {
    const pod = addresses[family];
    if (!pod) continue;
    const forwards = forwardsFor(config, family);
    if (forwards.length === 0) continue;
    const masquerade: Masquerade = !config.snat ? 'none' : config.masqAll ? 'all' : 'hairpin';
    const conditions = family === 4 ? config.conditionsV4 : config.conditionsV6;
    families.push({
      family,
      pod,
      forwards,
      masquerade,
      localhost: family === 4 && masquerade === 'hairpin',
      ...(conditions ? { conditions } : {}),
    });
  }
  return {
    owner,
    families,
    afterServices: config.afterServices,
    serviceCIDRs: config.serviceCIDRs,
    markMasqBit: config.markMasqBit,
    ...(config.externalSetMarkChain ? { externalSetMarkChain: config.externalSetMarkChain } : {}),
  };
}

/** GC: the owner ids that are still valid for this network. */
export function validOwnerIds(network: string, attachments: readonly Attachment[]): Set<string> {
  return new Set(attachments.map((a) => ownerOf(network, a.containerID, a.ifname).id));
}
