/** Facts and rows for the doctor's check tests. */
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import type { Facts } from '../../../../src/cli/facts.js';
import type { Ruleset } from '../../../../src/cli/nft.js';
import { type ListRow, OUR_TABLE } from '../../../../src/cli/rows.js';

/** One of our nft forwards: tcp/3306 to 10.244.0.5, localhost on. */
export const ours = (over: Partial<ListRow> = {}): ListRow => ({
  backend: 'nftables', origin: 'portmap-ts', source: OUR_TABLE, family: 4, protocol: 'tcp', hostPort: 3306,
  podIP: '10.244.0.5', containerPort: 3306, network: 'net', containerID: 'db', ifname: 'eth0', localhost: true, ...over,
});

/** A healthy node with every tool, forwarding on, and the given rules. */
export function facts(over: Partial<Facts> = {}, rs: Partial<Ruleset> = {}): Facts {
  return {
    tools: { nft: true, iptables: true, conntrack: true, ss: true, ip: true },
    ruleset: { serviceCidrs: [], rows: [], services: [], natChains: [], tables: [], ourPriority: -100, ...rs },
    iptables: [], ipvsAddresses: [], ipsetServices: [], listeners: [], ipForward: '1', ip6Forward: '1', routeLocalnet: [], confFiles: [], errors: [], unreadable: [], rulesRead: 1,
    ...over,
  };
}
export const ids = (f: Facts) => diagnose(f).map((x) => x.id);
export const clusterIP = { kind: 'clusterIP' as const, address: '10.96.0.10', protocol: 'tcp', port: 3306, mode: 'ipvs' as const, source: 'ipset KUBE-CLUSTER-IP', family: 4 as const };
