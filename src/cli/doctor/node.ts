/** The node around the rules: forwarding sysctls, route_localnet, the tools. */
import { SBIN_DIRS } from '../../host/exec.js';
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
      fix: 'Turn forwarding on now, and at every boot (a file in /etc/sysctl.d/):',
      commands: ['sysctl -w net.ipv4.ip_forward=1', 'echo net.ipv4.ip_forward=1 > /etc/sysctl.d/99-forward.conf'],
    });
  }
  if (rows.some((r) => r.family === 6) && facts.ip6Forward === '0') {
    out.push({
      id: 'ip6-forward-off',
      severity: 'error',
      message: `net.ipv6.conf.all.forwarding is 0 but IPv6 hostPorts exist: they are DNATed and then dropped.`,
      fix: 'Turn IPv6 forwarding on now, and at every boot (a file in /etc/sysctl.d/):',
      commands: ['sysctl -w net.ipv6.conf.all.forwarding=1', 'echo net.ipv6.conf.all.forwarding=1 > /etc/sysctl.d/99-forward6.conf'],
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
        ? 'Turn it on (portmap sets it on ADD: recreating the pod does it too):'
        : 'Delete the stale mappings (delete the pod, or run a CNI GC).',
      ...(l.dev ? { commands: [`sysctl -w net.ipv4.conf.${l.dev}.route_localnet=1`] } : {}),
    });
  }
  return out;
}

/** nft, iptables, conntrack and the tools doctor reads with (on PATH, or in the sbin directories). */
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
      message: `${tool} is not installed (not on PATH, nor in ${SBIN_DIRS.join(', ')}): ${effect}.`,
      fix: `Install the ${pkg} package (Debian/Ubuntu below; or your distribution's ${pkg} package).`,
      commands: [`apt-get install ${pkg}`],
    };
  });
}

/** The note for tools found outside PATH: installed, and used from there, but not where a shell looks. */
export function offPathNote(facts: Pick<Facts, 'offPath' | 'path'>): string | undefined {
  const found = Object.entries(facts.offPath ?? {});
  if (found.length === 0) return undefined;
  const list = found.map(([tool, file]) => `${tool} (${file})`).join(', ');
  return `installed but not on PATH (${facts.path || 'empty'}): ${list}; portmap runs ${found.length === 1 ? 'it' : 'them'} ` +
    'from there, a shell with this PATH does not find them';
}
