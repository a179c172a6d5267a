/** kube-proxy's ipvs-mode Service ports, from `ipset list <set> -o save` (pure). */
import { ipFamily } from '../net/ip.js';
import { lines } from './format.js';
import { KUBE_CLUSTER_IP_SET, type ServicePort } from './kube-proxy.js';

const NODE_PORT_SET = /^KUBE-NODE-PORT-(TCP|UDP|SCTP)$/;

/** The sets that hold kube-proxy's ipvs-mode ClusterIPs and NodePorts. */
export const KUBE_IPVS_SETS = [KUBE_CLUSTER_IP_SET, 'KUBE-NODE-PORT-TCP', 'KUBE-NODE-PORT-UDP', 'KUBE-NODE-PORT-SCTP'];

/** `add KUBE-CLUSTER-IP 10.96.0.10,tcp:53` and `add KUBE-NODE-PORT-TCP 30080`. */
export function parseIpsetSave(text: string): ServicePort[] {
  const out: ServicePort[] = [];
  for (const line of lines(text)) {
    const [op, set = '', member = ''] = line.split(/\s+/);
    if (op !== 'add') continue;
    const m = /^([^,]+),(tcp|udp|sctp):(\d+)$/.exec(member);
    if (set === KUBE_CLUSTER_IP_SET && m) {
      const [, address, protocol, port] = m as unknown as [string, string, string, string];
      const family = ipFamily(address) === 6 ? 6 : 4;
      const source = `ipset ${KUBE_CLUSTER_IP_SET}`;
      out.push({ kind: 'clusterIP', address, protocol, port: Number(port), mode: 'ipvs', source, family });
    }
    const np = NODE_PORT_SET.exec(set);
    if (np && /^\d+$/.test(member)) {
      const protocol = np[1]!.toLowerCase();
      out.push({ kind: 'nodePort', protocol, port: Number(member), mode: 'ipvs', source: `ipset ${set}` });
    }
  }
  return out;
}
