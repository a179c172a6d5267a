/** How findings name a row, and how to remove the entries behind it (pure). */
import { cidrContains, parseCidr } from '../../net/ip.js';
import type { Facts } from '../facts.js';
import { addrPort } from '../format.js';
import type { ListRow } from '../rows.js';

/** One host port of one family: rows with the same key compete for the same packets. */
export const keyOf = (r: ListRow): string => `${r.family}|${r.protocol}|${r.hostIP ?? '*'}|${r.hostPort}`;

/** "pod 10.244.0.5:80 (net/container)" */
export function describeRow(r: ListRow): string {
  const who = r.containerID ? ` (${r.network ? `${r.network}/` : ''}${r.containerID}${r.ifname ? `/${r.ifname}` : ''})` : '';
  const where = `${r.origin === 'reference' ? 'reference plugin' : 'portmap'}, ${r.source}${r.chain ? ` ${r.chain}` : ''}`;
  return `${addrPort(r.podIP, r.containerPort)}${who} [${where}]`;
}

/** "tcp/8080 on 192.0.2.1 (IPv6)" */
export const mapping = (r: ListRow): string => `${r.protocol}/${r.hostPort}${r.hostIP ? ` on ${r.hostIP}` : ''}${r.family === 6 ? ' (IPv6)' : ''}`;

/** How to remove the entries behind one row. */
export function removalHint(r: ListRow): string {
  if (r.origin === 'portmap-ts' && r.source.startsWith('nft')) {
    const set = r.hostIP ? `hostipports${r.family}` : `hostports${r.family}`;
    const key = r.hostIP ? `${r.hostIP} . ${r.protocol} . ${r.hostPort}` : `${r.protocol} . ${r.hostPort}`;
    return `delete the pod (its DEL removes the entry) or run a CNI GC; by hand: nft delete element inet cni_portmap ${set}_addr '{ ${key} }'; nft delete element inet cni_portmap ${set}_port '{ ${key} }'`;
  }
  if (r.source.startsWith('iptables')) {
    const ipt = `${r.family === 6 ? 'ip6' : 'ip'}tables${r.source.endsWith('legacy') ? '-legacy' : ''}`;
    return `delete the pod, or by hand: ${ipt}-save -t nat | grep -n ${r.chain ?? 'CNI-DN-'} to find its jump in CNI-HOSTPORT-DNAT, delete that rule (${ipt} -t nat -D CNI-HOSTPORT-DNAT <rule>), then ${ipt} -t nat -F ${r.chain ?? '<chain>'} && ${ipt} -t nat -X ${r.chain ?? '<chain>'}`;
  }
  return `delete the pod, or by hand: nft -a list chain ${r.family === 6 ? 'ip6' : 'ip'} cni_hostport hostports, then nft delete rule ${r.family === 6 ? 'ip6' : 'ip'} cni_hostport hostports handle <handle> for the rule commented ${r.containerID ?? '<container id>'}`;
}

/** Destinations a row never DNATs: our table's servicecidrs sets, or a CNI-DN chain's RETURN rules. */
export const excludesOf = (r: ListRow, facts: Facts): string[] =>
  r.origin === 'portmap-ts' && r.source.startsWith('nft') ? (facts.ruleset?.serviceCidrs ?? []) : (r.excludes ?? []);

export const inCidrs = (addr: string, cidrs: readonly string[]): boolean =>
  cidrs.some((c) => {
    try {
      return cidrContains(parseCidr(c), addr);
    } catch {
      return false;
    }
  });

/** The priority of iptables' nat hooks (NF_IP_PRI_NAT_DST). */
export const IPT_NAT_PRIORITY = -100;
