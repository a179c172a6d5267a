/** The rows of `portmap list` and `doctor`: a backend's forward plus the table it was read from. */
import type { ForwardRow } from '../backends/backend.js';
import type { FlavourName } from '../backends/iptables/flavour.js';
import { FAMILY, TABLE } from '../backends/nftables/json.js';
import { REFERENCE_TABLE } from '../backends/nftables/read.js';

/** Where a row was read: an nft table (ours, or the reference plugin's), or an iptables nat table. */
export type RowSource =
  | { kind: 'nft'; table: typeof TABLE; family: typeof FAMILY }
  | { kind: 'nft'; table: typeof REFERENCE_TABLE; family: 'ip' | 'ip6' }
  | { kind: 'iptables'; flavour: FlavourName };

export const OUR_TABLE: RowSource = { kind: 'nft', table: TABLE, family: FAMILY };

/** The source as people and --json read it: `nft inet cni_portmap`, `nft ip6 cni_hostport`, `iptables-nft`. */
export const sourceLabel = (s: RowSource): string =>
  s.kind === 'nft' ? `nft ${s.family} ${s.table}` : `iptables-${s.flavour}`;

/** Whether a source is our own nft table. */
export const isOurTable = (s: RowSource): boolean => s.kind === 'nft' && s.table === TABLE;

/** A forward as `portmap list` shows it: a backend row plus where it was read. */
export interface ListRow extends ForwardRow {
  /**
   * origin portmap-ts: our nft table, or a CNI-DN-* chain holding our marker rule; reference: the
   * reference plugin's nft table cni_hostport, or a CNI-DN-* chain without our marker.
   */
  source: RowSource;
  /** iptables: destinations the CNI-DN chain RETURNs first (serviceCIDRs) */
  excludes?: string[];
  /** iptables: the CNI-DN-* chain holding the DNAT; the reference plugin's nft tables: the chain of its rule */
  chain?: string;
  /** The reference plugin's nft tables: the handle of the rule (to delete it) */
  handle?: number;
  /** Whether node -> 127.0.0.1:hostPort is forwarded (IPv4, snat on). */
  localhost?: boolean;
  /** The Kubernetes pod, when the attachment's record names it. */
  pod?: { namespace: string; name: string };
}

/** A row as `portmap list --json` prints it: the source as its label. */
export const rowJson = (r: ListRow): Omit<ListRow, 'source'> & { source: string } =>
  ({ ...r, source: sourceLabel(r.source) });
