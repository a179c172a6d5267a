/**
 * hostPorts against kube-proxy: a hostPort equal to a Service port, KUBE-SERVICES ordered after our jump,
 * kube-proxy and hostPort rules in different iptables flavours.
 */
import { ipFamily } from '../../net/ip.js';
import type { Facts } from '../facts.js';
import { addrPort } from '../format.js';
import { type Flavour, type ServicePort, dnChains, hasKubeProxy, isIpvsMode, jumpIndex, kubeServices } from '../iptables.js';
import type { ListRow } from '../rows.js';
import { IPT_NAT_PRIORITY, describeRow, excludesOf, inCidrs, keyOf, mapping } from './describe.js';
import type { Finding } from './finding.js';

/** The Service ports kube-proxy programs on this node, from every source. */
export function servicePorts(facts: Facts): ServicePort[] {
  const out = [...(facts.ruleset?.services ?? []), ...facts.ipsetServices];
  for (const s of facts.iptables) {
    const services = kubeServices(s.nat, s.flavour, s.family);
    if (isIpvsMode(s.nat)) continue; // ipvs ClusterIPs come from the ipset and kube-ipvs0
    out.push(...services);
  }
  return out;
}

/** Flavour whose KUBE-SERVICES holds kube-proxy's rules for this family. */
const kubeFlavours = (facts: Facts, family: number): Flavour[] =>
  facts.iptables.filter((s) => s.family === family && hasKubeProxy(s.nat)).map((s) => s.flavour);

/** Whether KUBE-SERVICES is jumped to before CNI-HOSTPORT-DNAT in both PREROUTING and OUTPUT of a table. */
function servicesFirst(facts: Facts, flavour: string, family: number): boolean {
  const s = facts.iptables.find((x) => x.flavour === flavour && x.family === family);
  if (!s) return false;
  return ['PREROUTING', 'OUTPUT'].every((chain) => {
    const k = jumpIndex(s.nat, chain, 'KUBE-SERVICES');
    const c = jumpIndex(s.nat, chain, 'CNI-HOSTPORT-DNAT');
    return c === undefined || (k !== undefined && k < c);
  });
}

/**
 * A hostPort equal to a Service port: the hostPort DNAT can take the Service's traffic (ClusterIP under
 * ipvs, where ClusterIPs are local; NodePorts everywhere) unless Services are translated first.
 */
export function checkServiceCapture(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const services = servicePorts(facts);
  if (services.length === 0) return [];
  const ipvs = new Set(facts.ipvsAddresses);
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    for (const s of services) {
      if (s.protocol !== r.protocol || s.port !== r.hostPort) continue;
      if (s.family !== undefined && s.family !== r.family) continue;
      if (s.kind === 'clusterIP') {
        const a = s.address!;
        if (ipFamily(a) !== r.family) continue;
        // Only local destinations are hostPort-DNATed: ClusterIPs are local under ipvs (kube-ipvs0).
        if (!(ipvs.has(a) || s.mode === 'ipvs')) continue;
        if (r.hostIP && r.hostIP !== a) continue;
      }
      const target = s.kind === 'clusterIP' ? `Service ${addrPort(s.address!, s.port)} (ClusterIP, kube-proxy ${s.mode})` : `NodePort ${s.protocol}/${s.port} (kube-proxy ${s.mode})`;
      let captured: string | undefined;
      let fix: string;
      if (r.origin === 'portmap-ts' && r.source.startsWith('nft')) {
        if (s.kind === 'clusterIP' && inCidrs(s.address!, excludesOf(r, facts))) continue;
        const prio = facts.ruleset?.ourPriority ?? -100;
        const kpPrio = s.mode === 'nftables'
          ? Math.max(...(facts.ruleset?.natChains.filter((c) => c.table === 'kube-proxy' && c.hook === 'prerouting').map((c) => c.prio) ?? [IPT_NAT_PRIORITY]))
          : IPT_NAT_PRIORITY;
        if (s.mode === 'ipvs') {
          captured = `ipvs translates nothing in the NAT hooks, so the hostPort DNAT (priority ${prio}) takes new connections to ${addrPort(s.address ?? '<node>', s.port)}`;
          fix = `Set "serviceCIDRs": ["<your Service CIDR>"] (and "afterServices": true) in the portmap entry of the conflist, then re-ADD the pod (or restart it).`;
        } else if (prio <= kpPrio) {
          captured = `our NAT chains run at priority ${prio}, ${prio === kpPrio ? 'tied with' : 'before'} kube-proxy's (${kpPrio}), so the hostPort DNAT can win`;
          fix = `Set "afterServices": true${s.kind === 'clusterIP' ? ' and "serviceCIDRs"' : ''} in the portmap entry of the conflist and re-ADD the pod, or give the pod another hostPort.`;
        } else continue;
      } else if (r.source.startsWith('iptables')) {
        if (s.kind === 'clusterIP' && inCidrs(s.address!, excludesOf(r, facts))) continue;
        const flavour = r.source.replace('iptables-', '');
        const sameTable = s.source === r.source || (s.mode === 'ipvs' && kubeFlavours(facts, r.family).includes(flavour as Flavour));
        if (sameTable && servicesFirst(facts, flavour, r.family)) continue;
        captured = sameTable
          ? `the CNI-HOSTPORT-DNAT jump comes before KUBE-SERVICES in ${r.source}`
          : `the hostPort rules (${r.source}) and kube-proxy's (${s.source}) are in different tables, whose order is not defined`;
        fix = sameTable
          ? `Put the KUBE-SERVICES jump first (restart kube-proxy, or ${r.family === 6 ? 'ip6' : 'ip'}tables -t nat -I PREROUTING 1 -j KUBE-SERVICES and the same for OUTPUT, deleting the old jumps), or give the pod another hostPort.`
          : `Run the hostPort plugin and kube-proxy on the same iptables flavour, or use this plugin's nftables backend with "afterServices": true and "serviceCIDRs".`;
      } else {
        captured = `the reference plugin's cni_hostport table runs at priority -100, in no defined order with kube-proxy, and has no Service exclusion`;
        fix = `Move the pod to this plugin with "afterServices": true and "serviceCIDRs", or give it another hostPort.`;
      }
      const id = `${keyOf(r)}|${s.kind}|${s.address ?? ''}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        id: 'service-port-captured',
        severity: 'error',
        message: `hostPort ${mapping(r)} of ${describeRow(r)} equals ${target}${s.name ? ` ${s.name}` : ''}: ${captured}. Clients of the Service reach the pod instead.`,
        fix,
      });
    }
  }
  return out;
}

/** KUBE-SERVICES jumped to after CNI-HOSTPORT-DNAT in PREROUTING or OUTPUT. */
export function checkKubeServicesOrder(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const s of facts.iptables) {
    for (const chain of ['PREROUTING', 'OUTPUT']) {
      const k = jumpIndex(s.nat, chain, 'KUBE-SERVICES');
      const c = jumpIndex(s.nat, chain, 'CNI-HOSTPORT-DNAT');
      if (k === undefined || c === undefined || k < c) continue;
      const ipt = `${s.family === 6 ? 'ip6' : 'ip'}tables-${s.flavour}`;
      out.push({
        id: 'kube-services-after-hostports',
        severity: 'warning',
        message: `In ${ipt} nat ${chain}, the jump to CNI-HOSTPORT-DNAT (rule ${c + 1}) comes before KUBE-SERVICES (rule ${k + 1}): a hostPort equal to a Service or NodePort port takes that Service's traffic.`,
        fix: `Restart kube-proxy so that it re-inserts its jump at the top, or move it: ${ipt} -t nat -D ${chain} -m comment --comment "kubernetes service portals" -j KUBE-SERVICES; ${ipt} -t nat -I ${chain} 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES.`,
      });
    }
  }
  return out;
}

/** kube-proxy in one iptables flavour, hostPort rules in the other: their order is undefined. */
export function checkFlavourSplit(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const family of [4, 6]) {
    const kube = kubeFlavours(facts, family);
    if (kube.length === 0) continue;
    for (const s of facts.iptables.filter((x) => x.family === family)) {
      if (kube.includes(s.flavour) || dnChains(s.nat).length === 0) continue;
      const ip = family === 6 ? 'ip6' : 'ip';
      out.push({
        id: 'iptables-flavour-split',
        severity: 'error',
        message: `kube-proxy's rules are in ${ip}tables-${kube.join('/')} but hostPort rules (CNI-HOSTPORT-DNAT) are in ${ip}tables-${s.flavour}: the two nat tables run in no defined order, so KUBE-SERVICES cannot protect Services from hostPorts (and the ipvs ACCEPT does not stop the other table).`,
        fix: `Use one flavour on the node: point the iptables alternative used by the CNI plugins at the one kube-proxy uses (update-alternatives --set iptables /usr/sbin/iptables-${kube[0]}), then remove the stray rules (${ip}tables-${s.flavour}-save -t nat shows them) and re-create the pods; or use this plugin's nftables backend with "afterServices": true and "serviceCIDRs".`,
      });
    }
  }
  return out;
}
