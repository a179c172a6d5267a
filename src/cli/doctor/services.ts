/**
 * hostPorts against kube-proxy: a hostPort equal to a Service port, KUBE-SERVICES ordered after our
 * jump, kube-proxy and hostPort rules in different iptables flavours.
 */
import type { FlavourName } from '../../backends/iptables/flavour.js';
import { KUBE_SERVICES, NAT_HOOK_PRIORITY, TOP_DNAT } from '../../backends/iptables/render.js';
import { REFERENCE_TABLE } from '../../backends/nftables/read.js';
import { PRIORITY_DEFAULT } from '../../backends/nftables/render.js';
import { type Family, addrPort, ipFamily } from '../../net/ip.js';
import type { Facts, IptSource } from '../facts.js';
import { commandLine } from '../format.js';
import { dnChains, jumpIndex, rulesOf } from '../iptables.js';
import { type ServicePort, hasKubeProxy, isIpvsMode, kubeServices } from '../kube-proxy.js';
import { KUBE_PROXY_TABLE } from '../nft.js';
import { type ListRow, isOurTable, sourceLabel } from '../rows.js';
import { describeRow, excludesOf, inCidrs, keyOf, hostPortText } from './describe.js';
import type { Finding } from './finding.js';

/** The Service ports kube-proxy programs on this node, from every source. */
function servicePorts(facts: Facts): ServicePort[] {
  const out = [...(facts.ruleset?.services ?? []), ...facts.ipsetServices];
  for (const s of facts.iptables) {
    const services = kubeServices(s.nat, s.flavour, s.family);
    if (isIpvsMode(s.nat)) continue; // ipvs ClusterIPs come from the ipset and kube-ipvs0
    out.push(...services);
  }
  return out;
}

/** Flavour whose KUBE-SERVICES holds kube-proxy's rules for this family. */
const kubeFlavours = (facts: Facts, family: Family): FlavourName[] =>
  facts.iptables.filter((s) => s.family === family && hasKubeProxy(s.nat)).map((s) => s.flavour);

/** The nat chains that jump to CNI-HOSTPORT-DNAT and KUBE-SERVICES. */
const JUMP_CHAINS = ['PREROUTING', 'OUTPUT'];

/** Whether KUBE-SERVICES is jumped to before CNI-HOSTPORT-DNAT in both PREROUTING and OUTPUT of a table. */
function servicesFirst(facts: Facts, flavour: FlavourName, family: Family): boolean {
  const s = facts.iptables.find((x) => x.flavour === flavour && x.family === family);
  if (!s) return false;
  return JUMP_CHAINS.every((chain) => {
    const k = jumpIndex(s.nat, chain, KUBE_SERVICES);
    const c = jumpIndex(s.nat, chain, TOP_DNAT);
    return c === undefined || (k !== undefined && k < c);
  });
}

/** Whether the hostPort DNAT of a row sees the Service's packets at all (same port, a local destination). */
function samePort(r: ListRow, s: ServicePort, ipvsAddresses: ReadonlySet<string>): boolean {
  if (s.protocol !== r.protocol || s.port < r.hostPort || s.port > (r.lastHostPort ?? r.hostPort)) return false;
  if (s.family !== undefined && s.family !== r.family) return false;
  if (s.kind !== 'clusterIP') return true;
  const a = s.address!;
  if (ipFamily(a) !== r.family) return false;
  // Only local destinations are hostPort-DNATed: ClusterIPs are local under ipvs (kube-ipvs0).
  if (!(ipvsAddresses.has(a) || s.mode === 'ipvs')) return false;
  return !r.hostIP || r.hostIP === a;
}

/** Why the hostPort DNAT wins over the Service, and the fix; undefined when the Service is safe. */
type Capture = { captured: string; fix: string; commands?: string[] } | undefined;

/**
 * The commands that put the KUBE-SERVICES jump before the CNI-HOSTPORT-DNAT jump in PREROUTING and
 * OUTPUT of one nat table: kube-proxy's own jump rule (as read) deleted and inserted first.
 */
function kubeServicesFirst(s: IptSource): string[] {
  const ipt = `${s.family === 6 ? 'ip6' : 'ip'}tables-${s.flavour}`;
  return JUMP_CHAINS.flatMap((chain) => {
    const k = jumpIndex(s.nat, chain, KUBE_SERVICES);
    const c = jumpIndex(s.nat, chain, TOP_DNAT);
    if (c === undefined || (k !== undefined && k < c)) return [];
    const rule = k === undefined ? undefined : rulesOf(s.nat, chain)[k];
    const args = rule?.args ?? ['-m', 'comment', '--comment', 'kubernetes service portals', '-j', KUBE_SERVICES];
    return [
      ...(rule ? [commandLine([ipt, '-t', 'nat', '-D', chain, ...args])] : []),
      commandLine([ipt, '-t', 'nat', '-I', chain, '1', ...args]),
    ];
  });
}

const CONFLIST = 'in the portmap entry of the conflist';

/** Our nft table: by priority against kube-proxy, and always under ipvs (it translates in no NAT hook). */
function ourCapture(r: ListRow, s: ServicePort, facts: Facts): Capture {
  if (s.kind === 'clusterIP' && inCidrs(s.address!, excludesOf(r, facts))) return undefined;
  const prio = facts.ruleset?.ourPriority ?? PRIORITY_DEFAULT;
  const kubeChains = facts.ruleset?.natChains.filter((c) => c.table === KUBE_PROXY_TABLE && c.hook === 'prerouting');
  const kpPrio = s.mode === 'nftables'
    ? Math.max(...(kubeChains?.map((c) => c.prio) ?? [NAT_HOOK_PRIORITY]))
    : NAT_HOOK_PRIORITY;
  if (s.mode === 'ipvs') {
    return {
      captured: `ipvs translates nothing in the NAT hooks, so the hostPort DNAT (priority ${prio}) takes new ` +
        `connections to ${addrPort(s.address ?? '<node>', s.port)}`,
      fix: `Set "serviceCIDRs": ["<your Service CIDR>"] (and "afterServices": true) ${CONFLIST}, ` +
        'then re-ADD the pod (or restart it).',
    };
  }
  if (prio > kpPrio) return undefined;
  return {
    captured: `our NAT chains run at priority ${prio}, ${prio === kpPrio ? 'tied with' : 'before'} ` +
      `kube-proxy's (${kpPrio}), so the hostPort DNAT can win`,
    fix: `Set "afterServices": true${s.kind === 'clusterIP' ? ' and "serviceCIDRs"' : ''} ${CONFLIST} ` +
      'and re-ADD the pod, or give the pod another hostPort.',
  };
}

/** A CNI-DN chain: safe when KUBE-SERVICES comes first in the same table. */
function iptablesCapture(r: ListRow, flavour: FlavourName, s: ServicePort, facts: Facts): Capture {
  if (s.kind === 'clusterIP' && inCidrs(s.address!, excludesOf(r, facts))) return undefined;
  const table = sourceLabel(r.source);
  // kube-proxy's iptables-mode ports carry the label of the table they were read from.
  const sameTable = s.source === table || (s.mode === 'ipvs' && kubeFlavours(facts, r.family).includes(flavour));
  if (sameTable && servicesFirst(facts, flavour, r.family)) return undefined;
  if (!sameTable) {
    return {
      captured: `the hostPort rules (${table}) and kube-proxy's (${s.source}) are in different tables, ` +
        'whose order is not defined',
      fix: 'Run the hostPort plugin and kube-proxy on the same iptables flavour, or use this plugin\'s nftables ' +
        'backend with "afterServices": true and "serviceCIDRs".',
    };
  }
  const nat = facts.iptables.find((x) => x.flavour === flavour && x.family === r.family);
  return {
    captured: `the ${TOP_DNAT} jump comes before ${KUBE_SERVICES} in ${table}`,
    fix: `Put the ${KUBE_SERVICES} jump first (restarting kube-proxy does; by hand, the commands below), ` +
      'or give the pod another hostPort.',
    ...(nat ? { commands: kubeServicesFirst(nat) } : {}),
  };
}

/** The reference's nft table: a fixed priority and no Service exclusion. */
const referenceCapture = (): Capture => ({
  captured: `the reference plugin's ${REFERENCE_TABLE} table runs at priority ${PRIORITY_DEFAULT}, ` +
    'in no defined order with kube-proxy, and has no Service exclusion',
  fix: 'Move the pod to this plugin with "afterServices": true and "serviceCIDRs", or give it another hostPort.',
});

function captureOf(r: ListRow, s: ServicePort, facts: Facts): Capture {
  if (r.origin === 'portmap-ts' && isOurTable(r.source)) return ourCapture(r, s, facts);
  if (r.source.kind === 'iptables') return iptablesCapture(r, r.source.flavour, s, facts);
  return referenceCapture();
}

const serviceText = (s: ServicePort): string =>
  (s.kind === 'clusterIP'
    ? `Service ${addrPort(s.address!, s.port)} (ClusterIP, kube-proxy ${s.mode})`
    : `NodePort ${s.protocol}/${s.port} (kube-proxy ${s.mode})`) + (s.name ? ` ${s.name}` : '');

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
      if (!samePort(r, s, ipvs)) continue;
      const capture = captureOf(r, s, facts);
      if (!capture) continue;
      const id = `${keyOf(r)}|${s.kind}|${s.address ?? ''}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        id: 'service-port-captured',
        severity: 'error',
        message: `hostPort ${hostPortText(r)} of ${describeRow(r)} equals ${serviceText(s)}: ${capture.captured}. ` +
          'Clients of the Service reach the pod instead.',
        fix: capture.fix,
        ...(capture.commands?.length ? { commands: capture.commands } : {}),
      });
    }
  }
  return out;
}

/** KUBE-SERVICES jumped to after CNI-HOSTPORT-DNAT in PREROUTING or OUTPUT. */
export function checkKubeServicesOrder(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const s of facts.iptables) {
    for (const chain of JUMP_CHAINS) {
      const k = jumpIndex(s.nat, chain, KUBE_SERVICES);
      const c = jumpIndex(s.nat, chain, TOP_DNAT);
      if (k === undefined || c === undefined || k < c) continue;
      const ipt = `${s.family === 6 ? 'ip6' : 'ip'}tables-${s.flavour}`;
      out.push({
        id: 'kube-services-after-hostports',
        severity: 'warning',
        message: `In ${ipt} nat ${chain}, the jump to ${TOP_DNAT} (rule ${c + 1}) comes before ${KUBE_SERVICES} ` +
          `(rule ${k + 1}): a hostPort equal to a Service or NodePort port takes that Service's traffic.`,
        fix: 'Restart kube-proxy so that it re-inserts its jump at the top, or move it by hand:',
        commands: kubeServicesFirst(s).filter((cmd) => cmd.includes(` ${chain} `)),
      });
    }
  }
  return out;
}

/** kube-proxy in one iptables flavour, hostPort rules in the other: their order is undefined. */
export function checkFlavourSplit(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const family of [4, 6] as const) {
    const kube = kubeFlavours(facts, family);
    if (kube.length === 0) continue;
    for (const s of facts.iptables.filter((x) => x.family === family)) {
      if (kube.includes(s.flavour) || dnChains(s.nat).length === 0) continue;
      const ip = family === 6 ? 'ip6' : 'ip';
      out.push({
        id: 'iptables-flavour-split',
        severity: 'error',
        message: `kube-proxy's rules are in ${ip}tables-${kube.join('/')} but hostPort rules (${TOP_DNAT}) ` +
          `are in ${ip}tables-${s.flavour}: the two nat tables run in no defined order, so ${KUBE_SERVICES} ` +
          'cannot protect Services from hostPorts (and the ipvs ACCEPT does not stop the other table).',
        fix: 'Use one flavour on the node: point the iptables alternatives the CNI plugins use at the one ' +
          'kube-proxy uses, re-create the pods, then remove the stray rules (the last command lists them); or use ' +
          'this plugin\'s nftables backend with "afterServices": true and "serviceCIDRs".',
        commands: [
          `update-alternatives --set iptables /usr/sbin/iptables-${kube[0]}`,
          `update-alternatives --set ip6tables /usr/sbin/ip6tables-${kube[0]}`,
          `${ip}tables-${s.flavour}-save -t nat`,
        ],
      });
    }
  }
  return out;
}
