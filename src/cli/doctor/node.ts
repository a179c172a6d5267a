/** The node around the rules: forwarding sysctls, route_localnet, the tools. */
import { type Facts, TOOLS, type Tool } from '../facts.js';
import type { ListRow } from '../rows.js';
import type { Finding } from './finding.js';

/** ip_forward, route_localnet. */
export function checkSysctls(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const out: Finding[] = [];
  const hasPortmapConf = (facts.confFiles ?? []).some((f) => f.text?.includes('"portmap"'));
  if ((rows.some((r) => r.family === 4) || hasPortmapConf) && facts.ipForward === '0') {
    out.push({
      id: 'ip-forward-off',
      severity: 'error',
      message: `net.ipv4.ip_forward is 0: packets to a hostPort are DNATed to the pod but never forwarded to it.`,
      fix: 'sysctl -w net.ipv4.ip_forward=1, and make it permanent in /etc/sysctl.d/ ' +
        '(e.g. echo net.ipv4.ip_forward=1 > /etc/sysctl.d/99-forward.conf).',
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
    if (l.on === true) continue;
    const ports = rows.filter((r) => r.podIP === l.podIP && r.localhost).map((r) => `${r.protocol}/${r.hostPort}`);
    const value = l.on === undefined ? 'unreadable' : '0';
    out.push({
      id: 'route-localnet-off',
      severity: 'warning',
      message: l.dev
        ? `net.ipv4.conf.${l.dev}.route_localnet is ${value}: 127.0.0.1:${ports.join(', ')} on the node cannot ` +
          `reach pod ${l.podIP} (the kernel drops 127.0.0.0/8 packets routed to ${l.dev}).`
        : `No route to pod ${l.podIP}, which has localhost hostPorts (${ports.join(', ')}): the pod is gone ` +
          'or its network is broken.',
      fix: l.dev
        ? `sysctl -w net.ipv4.conf.${l.dev}.route_localnet=1 (portmap sets it on ADD; a re-ADD of the pod ` +
          'restores it).'
        : `Delete the stale mappings (delete the pod or run a CNI GC).`,
    });
  }
  return out;
}

/** nft, iptables, conntrack and the tools doctor reads with. */
export function checkTools(facts: Facts): Finding[] {
  const why: Record<Tool, [effect: string, pkg: string]> = {
    nft: ['the nftables backend cannot program or read hostPorts', 'nftables'],
    iptables: ['the iptables backend and kube-proxy rules cannot be read or programmed', 'iptables'],
    conntrack: [
      'stale UDP conntrack entries are not cleared, so a UDP client can keep reaching a deleted pod',
      'conntrack',
    ],
    ss: ['doctor cannot see which processes listen on mapped host ports', 'iproute2'],
    ip: ['doctor cannot read routes and kube-ipvs0 addresses', 'iproute2'],
  };
  return TOOLS.filter((tool) => !facts.tools[tool]).map((tool) => {
    const [effect, pkg] = why[tool];
    return {
      id: `tool-missing-${tool}`,
      severity: 'warning',
      message: `${tool} is not on PATH: ${effect}.`,
      fix: `apt-get install ${pkg} (or your distribution's ${pkg} package).`,
    };
  });
}
