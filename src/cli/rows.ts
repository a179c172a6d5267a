import type { ForwardRow } from '../backends/backend.js';

/** A forward as `portmap list` shows it: a backend row plus where it was read. */
export interface ListRow extends Omit<ForwardRow, 'origin'> {
  /**
   * portmap-ts: our nft table, or a CNI-DN-* chain holding our marker rule; reference: the reference
   * plugin's nft table cni_hostport, or a CNI-DN-* chain without our marker (same layout otherwise).
   */
  origin: ForwardRow['origin'];
  /** iptables: destinations the CNI-DN chain RETURNs first (serviceCIDRs) */
  excludes?: string[];
  /** nft inet cni_portmap, nft ip cni_hostport, iptables-nft, iptables-legacy */
  source: string;
  /** iptables: the CNI-DN-* chain holding the DNAT */
  chain?: string;
  /** Whether node -> 127.0.0.1:hostPort is forwarded (IPv4, snat on). */
  localhost?: boolean;
}
