/**
 * `portmap doctor`: checks the node for the ways hostPorts break or hijack traffic. Each check is a
 * small pure function from gathered facts to findings; `runDoctor` gathers and prints.
 */
import { cidrContains, ipFamily, parseCidr } from '../net/ip.js';
import { type Facts, type Listener, allRows, gatherAll } from './facts.js';
import { addrPort, wrap } from './format.js';
import { type Flavour, type ServicePort, dnChains, hasKubeProxy, isIpvsMode, jumpIndex, kubeServices } from './iptables.js';
import type { ListRow } from './rows.js';

export type Severity = 'error' | 'warning';

export interface Finding {
  id: string;
  severity: Severity;
  message: string;
  fix: string;
}

const IPT_NAT_PRIORITY = -100;

const keyOf = (r: ListRow): string => `${r.family}|${r.protocol}|${r.hostIP ?? '*'}|${r.hostPort}`;

/** "pod 10.244.0.5:80 (net/container)" */
export function describeRow(r: ListRow): string {
  const who = r.containerID ? ` (${r.network ? `${r.network}/` : ''}${r.containerID}${r.ifname ? `/${r.ifname}` : ''})` : '';
  const where = `${r.origin === 'reference' ? 'reference plugin' : 'portmap'}, ${r.source}${r.chain ? ` ${r.chain}` : ''}`;
  return `${addrPort(r.podIP, r.containerPort)}${who} [${where}]`;
}

const mapping = (r: ListRow): string => `${r.protocol}/${r.hostPort}${r.hostIP ? ` on ${r.hostIP}` : ''}${r.family === 6 ? ' (IPv6)' : ''}`;

/** Priority of the NAT prerouting hook that holds a row (lower runs first). */
function rowPriority(r: ListRow, facts: Facts): number | undefined {
  if (r.source.startsWith('iptables')) return IPT_NAT_PRIORITY;
  if (r.origin === 'portmap-ts') return facts.ruleset?.ourPriority;
  const fam = r.family === 4 ? 'ip' : 'ip6';
  return facts.ruleset?.natChains.find((c) => c.table === 'cni_hostport' && c.family === fam && c.hook === 'prerouting')?.prio;
}

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

/** Two owners for one host port: one of them receives nothing. */
export function checkDuplicateOwners(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const groups = new Map<string, ListRow[]>();
  for (const r of rows) groups.set(keyOf(r), [...(groups.get(keyOf(r)) ?? []), r]);
  const out: Array<Finding & { sig: string }> = [];
  for (const group of groups.values()) {
    const owners = new Map<string, ListRow>();
    for (const r of group) owners.set(`${r.source}|${r.chain ?? ''}|${r.containerID ?? ''}|${r.podIP}`, r);
    if (owners.size < 2) continue;
    const list = [...owners.values()];
    // Lower hook priority runs first; inside one iptables table the earlier CNI-HOSTPORT-DNAT jump wins.
    const ranked = list
      .map((r) => ({ r, prio: rowPriority(r, facts) ?? IPT_NAT_PRIORITY }))
      .sort((a, b) => a.prio - b.prio);
    const best = ranked[0]!.prio;
    const top = ranked.filter((x) => x.prio === best).map((x) => x.r);
    const topSources = new Set(top.map((r) => r.source));
    let winner: ListRow | undefined;
    let why = '';
    if (topSources.size === 1) {
      // Same table: iptables rows come in jump order (allRows keeps it), the first one wins.
      winner = top[0]!;
      why = top.length > 1 ? `its jump comes first in CNI-HOSTPORT-DNAT` : `its NAT hook priority (${best}) runs first`;
    }
    const first = list[0]!;
    const others = list.filter((r) => r !== winner);
    const message = winner
      ? `Host port ${mapping(first)} has ${list.length} owners. ${describeRow(winner)} receives the traffic (${why}); ` +
        `${others.map(describeRow).join(', ')} never ${others.length > 1 ? 'do' : 'does'}.`
      : `Host port ${mapping(first)} has ${list.length} owners in different tables at the same NAT priority (${best}): ` +
        `${list.map(describeRow).join(', ')}. Which one receives a new connection depends on the order the tables were registered.`;
    const owners6 = list.map((r) => r.containerID ?? r.podIP).sort().join(',');
    const sig = `${first.protocol}|${first.hostIP ?? '*'}|${first.hostPort}|${owners6}|${winner?.containerID ?? ''}`;
    const twin = out.find((f) => f.sig === sig);
    if (twin) {
      twin.message = twin.message.replace(/^Host port (\S+)( on \S+)?/, (m) => `${m} (IPv4 and IPv6)`);
      continue;
    }
    out.push({
      sig,
      id: 'duplicate-hostport',
      severity: 'error',
      message,
      fix: `Keep the owner that belongs to a running pod and remove the stale one(s): ${list.map((r) => `for ${r.containerID ?? r.podIP}: ${removalHint(r)}`).join('; ')}.`,
    });
  }
  return out.map(({ sig: _sig, ...f }) => f);
}

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

/** Destinations a row never DNATs: our table's servicecidrs sets, or a CNI-DN chain's RETURN rules. */
const excludesOf = (r: ListRow, facts: Facts): string[] =>
  r.origin === 'portmap-ts' && r.source.startsWith('nft') ? (facts.ruleset?.serviceCidrs ?? []) : (r.excludes ?? []);

const inCidrs = (addr: string, cidrs: readonly string[]): boolean =>
  cidrs.some((c) => {
    try {
      return cidrContains(parseCidr(c), addr);
    } catch {
      return false;
    }
  });

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

const WILDCARDS = new Set(['*', '0.0.0.0', '::']);

function listenerMatches(l: Listener, r: ListRow): boolean {
  if (l.protocol !== r.protocol || l.port !== r.hostPort) return false;
  if (WILDCARDS.has(l.address)) {
    if (l.address === '0.0.0.0') return r.family === 4;
    return true;
  }
  if (ipFamily(l.address) !== r.family) return false;
  return !r.hostIP || r.hostIP === l.address;
}

/** A process listening on a host port that is DNATed: it never receives new connections on those addresses. */
export function checkListeners(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (const l of facts.listeners ?? []) {
    for (const r of rows) {
      if (!listenerMatches(l, r)) continue;
      if (!WILDCARDS.has(l.address) && inCidrs(l.address, excludesOf(r, facts))) continue;
      const id = `${l.protocol}|${l.address}|${l.port}|${r.containerID ?? r.podIP}`;
      if (seen.has(id)) continue;
      seen.add(id);
      out.push({
        id: 'listener-shadowed',
        severity: 'warning',
        message: `${l.process ?? 'A process'} listens on ${l.protocol} ${addrPort(l.address, l.port)}, but hostPort ${mapping(r)} sends every new ${l.protocol.toUpperCase()} connection for port ${r.hostPort} on ${r.hostIP ?? 'any local address'} to ${describeRow(r)}: the process never receives them (ss, netstat and lsof do not show hostPorts).`,
        fix: `Move the process to another port, or remove or change the pod's hostPort (or give it a hostIP that the process does not use).`,
      });
    }
  }
  return out;
}

interface PluginConf {
  type?: unknown;
  capabilities?: { portMappings?: unknown };
}

/** Conflists that chain portmap without the portMappings capability: the runtime never sends mappings. */
export function checkConflists(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const f of facts.confFiles ?? []) {
    if (f.text === undefined) continue;
    let doc: { plugins?: PluginConf[]; type?: unknown; capabilities?: PluginConf['capabilities'] };
    try {
      doc = JSON.parse(f.text) as typeof doc;
    } catch (err) {
      if (/portmap/.test(f.text)) {
        out.push({ id: 'conflist-invalid', severity: 'warning', message: `${f.file} mentions portmap but is not valid JSON (${(err as Error).message}): the runtime ignores it.`, fix: `Repair the JSON (python3 -m json.tool ${f.file} shows where it breaks).` });
      }
      continue;
    }
    const plugins: PluginConf[] = Array.isArray(doc?.plugins) ? doc.plugins : [doc];
    plugins.forEach((p, i) => {
      if (p?.type !== 'portmap' || p.capabilities?.portMappings === true) return;
      out.push({
        id: 'conflist-missing-capability',
        severity: 'error',
        message: `${f.file} chains portmap${Array.isArray(doc?.plugins) ? ` (plugins[${i}])` : ''} without "capabilities": {"portMappings": true}: the runtime never passes the pods' hostPorts, so none are forwarded.`,
        fix: `Add "capabilities": {"portMappings": true} to that plugin entry, then restart the pods that need hostPorts.`,
      });
    });
  }
  return out;
}

/** ip_forward, route_localnet. */
export function checkSysctls(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const hasPortmapConf = (facts.confFiles ?? []).some((f) => f.text?.includes('"portmap"'));
  if ((rows.some((r) => r.family === 4) || hasPortmapConf) && facts.ipForward === '0') {
    out.push({
      id: 'ip-forward-off',
      severity: 'error',
      message: `net.ipv4.ip_forward is 0: packets to a hostPort are DNATed to the pod but never forwarded to it.`,
      fix: `sysctl -w net.ipv4.ip_forward=1, and make it permanent in /etc/sysctl.d/ (e.g. echo net.ipv4.ip_forward=1 > /etc/sysctl.d/99-forward.conf).`,
    });
  }
  if (rows.some((r) => r.family === 6) && facts.ip6Forward === '0') {
    out.push({
      id: 'ip6-forward-off',
      severity: 'error',
      message: `net.ipv6.conf.all.forwarding is 0 but IPv6 hostPorts exist: they are DNATed and then dropped.`,
      fix: `sysctl -w net.ipv6.conf.all.forwarding=1 and make it permanent in /etc/sysctl.d/.`,
    });
  }
  for (const l of facts.routeLocalnet) {
    if (l.value === '1') continue;
    const pods = rows.filter((r) => r.podIP === l.podIP && r.localhost).map((r) => `${r.protocol}/${r.hostPort}`);
    out.push({
      id: 'route-localnet-off',
      severity: 'warning',
      message: l.dev
        ? `net.ipv4.conf.${l.dev}.route_localnet is ${l.value ?? 'unreadable'}: 127.0.0.1:${pods.join(', ')} on the node cannot reach pod ${l.podIP} (the kernel drops 127.0.0.0/8 packets routed to ${l.dev}).`
        : `No route to pod ${l.podIP}, which has localhost hostPorts (${pods.join(', ')}): the pod is gone or its network is broken.`,
      fix: l.dev
        ? `sysctl -w net.ipv4.conf.${l.dev}.route_localnet=1 (portmap sets it on ADD; a re-ADD of the pod restores it).`
        : `Delete the stale mappings (delete the pod or run a CNI GC).`,
    });
  }
  return out;
}

/** nft, iptables, conntrack and the tools doctor reads with. */
export function checkTools(facts: Facts): Finding[] {
  const why: Record<string, [string, string]> = {
    nft: ['the nftables backend cannot program or read hostPorts', 'nftables'],
    iptables: ['the iptables backend and kube-proxy rules cannot be read or programmed', 'iptables'],
    conntrack: ['stale UDP conntrack entries are not cleared, so a UDP client can keep reaching a deleted pod', 'conntrack'],
    ss: ['doctor cannot see which processes listen on mapped host ports', 'iproute2'],
    ip: ['doctor cannot read routes and kube-ipvs0 addresses', 'iproute2'],
  };
  return Object.entries(why)
    .filter(([tool]) => !facts.tools[tool as keyof Facts['tools']])
    .map(([tool, [effect, pkg]]) => ({
      id: `tool-missing-${tool}`,
      severity: 'warning' as const,
      message: `${tool} is not on PATH: ${effect}.`,
      fix: `apt-get install ${pkg} (or your distribution's ${pkg} package).`,
    }));
}

/** Every check (pure). */
export function diagnose(facts: Facts): Finding[] {
  const rows = allRows(facts);
  return [
    ...checkTools(facts),
    ...checkSysctls(facts, rows),
    ...checkConflists(facts),
    ...checkDuplicateOwners(facts, rows),
    ...checkServiceCapture(facts, rows),
    ...checkKubeServicesOrder(facts),
    ...checkFlavourSplit(facts),
    ...checkListeners(facts, rows),
  ];
}

export function formatFindings(findings: readonly Finding[], rows: number, facts: Facts): string {
  const lines: string[] = [];
  if (findings.length === 0) {
    lines.push(`portmap doctor: no problems found (${rows} hostPort mapping${rows === 1 ? '' : 's'} checked).`);
  } else {
    lines.push(`portmap doctor: ${findings.length} finding${findings.length === 1 ? '' : 's'} (${rows} hostPort mapping${rows === 1 ? '' : 's'} checked)`);
    for (const f of findings) {
      lines.push('', wrap(`${f.severity === 'error' ? 'ERROR' : 'WARNING'} [${f.id}] ${f.message}`, 100, '    '), wrap(`    fix: ${f.fix}`, 100, '         '));
    }
  }
  if (facts.confDirError) lines.push('', `note: CNI config directory ${facts.cniConfDir}: ${facts.confDirError} (use --cni-conf-dir DIR)`);
  for (const e of facts.errors) lines.push(`note: ${e}`);
  return `${lines.join('\n')}\n`;
}

export interface DoctorOptions {
  json: boolean;
  cniConfDir: string;
}

export async function runDoctor(opts: DoctorOptions, write: (s: string) => void): Promise<number> {
  const facts = await gatherAll(opts.cniConfDir);
  const findings = diagnose(facts);
  const rows = allRows(facts).length;
  if (opts.json) {
    write(`${JSON.stringify({ healthy: findings.length === 0, mappings: rows, findings, notes: facts.errors }, null, 2)}\n`);
  } else {
    write(formatFindings(findings, rows, facts));
  }
  return findings.length === 0 ? 0 : 1;
}
