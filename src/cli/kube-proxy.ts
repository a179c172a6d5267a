/**
 * kube-proxy's Service ports as its iptables and ipvs modes leave them in `iptables-save -t nat`
 * (KUBE-SERVICES, KUBE-NODEPORTS, the KUBE-CLUSTER-IP ipset match), and the shape every reader of
 * Service ports (nft.ts for its nftables mode, ipset.ts for ipvs) returns. Pure.
 */
import type { FlavourName } from '../backends/iptables/flavour.js';
import { matchValue } from '../backends/iptables/parse.js';
import { KUBE_SERVICES, targetOf } from '../backends/iptables/render.js';
import type { Family } from '../net/ip.js';
import { type IptRule, type NatTable, jumpIndex, numberOf, rulesOf, stripMask } from './iptables.js';

/** kube-proxy's chain of NodePort rules, jumped to from KUBE-SERVICES. */
const KUBE_NODEPORTS = 'KUBE-NODEPORTS';
/** The ipset of ClusterIPs that kube-proxy's ipvs mode matches in KUBE-SERVICES. */
export const KUBE_CLUSTER_IP_SET = 'KUBE-CLUSTER-IP';

/** A Service port kube-proxy translates on this node. */
export interface ServicePort {
  kind: 'clusterIP' | 'nodePort';
  /** ClusterIP (kind clusterIP) */
  address?: string;
  protocol: string;
  port: number;
  /** kube-proxy mode that programmed it */
  mode: 'iptables' | 'ipvs' | 'nftables';
  /** Where it was read (iptables-nft, iptables-legacy, nft ip kube-proxy, ipset) */
  source: string;
  name?: string;
  /** Address family of the table it was read from, when known */
  family?: Family;
}

/** kube-proxy iptables-mode Services: `KUBE-SERVICES -d <ip>/32 -p tcp --dport N`, `KUBE-NODEPORTS --dport N`. */
export function kubeServices(nat: NatTable, flavour: FlavourName, family?: Family): ServicePort[] {
  const out: ServicePort[] = [];
  const base = { mode: 'iptables' as const, source: `iptables-${flavour}` };
  const extra = (r: IptRule) => {
    const name = matchValue(r.args, '--comment');
    return { ...(name ? { name } : {}), ...(family ? { family } : {}) };
  };
  // Chains nothing jumps to are leftovers: they translate nothing.
  const jumped = ['PREROUTING', 'OUTPUT'].some((from) => jumpIndex(nat, from, KUBE_SERVICES) !== undefined);
  if (!jumped) return out;
  const services = rulesOf(nat, KUBE_SERVICES);
  for (const r of services) {
    const d = matchValue(r.args, '-d');
    const protocol = matchValue(r.args, '-p');
    const port = numberOf(r, '--dport');
    if (!d || !protocol || port === undefined) continue;
    out.push({ kind: 'clusterIP', address: stripMask(d), protocol, port, ...base, ...extra(r) });
  }
  const nodePortsLive = services.some((r) => targetOf(r.args) === KUBE_NODEPORTS);
  for (const r of nodePortsLive ? rulesOf(nat, KUBE_NODEPORTS) : []) {
    const protocol = matchValue(r.args, '-p');
    const port = numberOf(r, '--dport');
    if (!protocol || port === undefined) continue;
    out.push({ kind: 'nodePort', protocol, port, ...base, ...extra(r) });
  }
  return out;
}

/** Whether the table holds kube-proxy rules at all. */
export const hasKubeProxy = (nat: NatTable): boolean => nat.chains.has(KUBE_SERVICES);

/** ipvs mode leaves `-m set --match-set KUBE-CLUSTER-IP` rules in KUBE-SERVICES. */
export const isIpvsMode = (nat: NatTable): boolean =>
  rulesOf(nat, KUBE_SERVICES).some((r) => matchValue(r.args, '--match-set') === KUBE_CLUSTER_IP_SET);
