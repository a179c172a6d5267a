/** What `list` and `doctor` know about the node once gather.ts has read it (types and pure helpers). */
import type { Family } from '../net/ip.js';
import type { FlavourName } from '../backends/iptables/flavour.js';
import { type NatTable, iptablesRows } from './iptables.js';
import type { ServicePort } from './kube-proxy.js';
import type { Ruleset } from './nft.js';
import type { ListRow } from './rows.js';

export const TOOLS = ['nft', 'iptables', 'conntrack', 'ss', 'ip'] as const;
export type Tool = (typeof TOOLS)[number];
/** The other programs list and doctor run: looked up the same way (PATH, then the sbin directories). */
export const OTHER_TOOLS = ['iptables-nft-save', 'iptables-legacy-save', 'ip6tables-nft-save', 'ip6tables-legacy-save', 'ipset'] as const;

/** Something list or doctor needed and could not read. */
export interface ReadFailure {
  /** What: "nft ruleset", "iptables-legacy nat table (IPv6)", "portmap's records"... */
  what: string;
  /** The command (as run) or the file that failed. */
  source: string;
  /** Its error: the command's first line of error output, or the system error. */
  error: string;
  /** It failed for lack of privileges (EPERM/EACCES, "Operation not permitted", "you must be root"). */
  permission: boolean;
  /** It holds hostPort rules: without it the list of mappings itself is incomplete. */
  rules: boolean;
}

/** Who this process runs as. */
export interface Privilege {
  uid: number;
  /** CAP_NET_ADMIN in the effective set (undefined: unknown); reading rules needs it. */
  netAdmin?: boolean;
}

/** One iptables nat table as read, with the flavour and family it was read from. */
export interface IptSource {
  flavour: FlavourName;
  family: Family;
  nat: NatTable;
}

/** A socket listening on the node (ss). */
export interface Listener {
  protocol: string;
  address: string;
  port: number;
  process?: string;
}

/** route_localnet where a pod with localhost hostPorts is routed. */
export interface LocalnetFact {
  podIP: string;
  /** The interface the node routes the pod through; undefined: no route. */
  dev?: string;
  /** route_localnet of that interface; undefined: unreadable. */
  on?: boolean;
}

/** One file of the CNI config directory: its text, or why it could not be read. */
export interface ConfFile {
  file: string;
  text?: string;
  error?: string;
}

export interface Facts {
  tools: Record<Tool, boolean>;
  ruleset?: Ruleset;
  iptables: IptSource[];
  /** Addresses on kube-ipvs0 (kube-proxy ipvs mode: ClusterIPs are local addresses). */
  ipvsAddresses: string[];
  /** Service ports from ipsets (ipvs mode). */
  ipsetServices: ServicePort[];
  listeners?: Listener[];
  /** net.ipv4.ip_forward, as read ('0', '1') */
  ipForward?: string;
  /** net.ipv6.conf.all.forwarding, as read */
  ip6Forward?: string;
  routeLocalnet: LocalnetFact[];
  cniConfDir?: string;
  confFiles?: ConfFile[];
  confDirError?: string;
  /** Notes: things that could not be read and that no check depends on (ss, ip...), for the report. */
  errors: string[];
  /** What could not be read and should have been: the report is incomplete (exit 4, see completeness.ts). */
  unreadable: ReadFailure[];
  /** Sources of hostPort rules read successfully (the nft ruleset, each iptables nat table). */
  rulesRead: number;
  privilege?: Privilege;
  /** Programs found only outside PATH (in the sbin directories): name -> file. */
  offPath?: Record<string, string>;
  /** PATH as this process saw it. */
  path?: string;
}

/** All hostPort rows: ours and the reference's, nft and iptables (pure). */
export function allRows(facts: Pick<Facts, 'ruleset' | 'iptables'>): ListRow[] {
  const ipt = facts.iptables.flatMap((s) => iptablesRows(s.nat, s.family, s.flavour));
  return [...(facts.ruleset?.rows ?? []), ...ipt];
}
