/** How findings name a row, and how to remove the entries behind it (pure). */
import { DNAT_CHAIN_PREFIX, TOP_DNAT, targetOf } from '../../backends/iptables/render.js';
import { FAMILY, TABLE } from '../../backends/nftables/json.js';
import { REFERENCE_HOSTPORTS_CHAIN, REFERENCE_TABLE } from '../../backends/nftables/read.js';
import { mapNames } from '../../backends/nftables/render.js';
import { addrPort, cidrContains, isCidr, parseCidr } from '../../net/ip.js';
import type { Facts, IptSource } from '../facts.js';
import { commandLine } from '../format.js';
import { rulesOf } from '../iptables.js';
import { type ListRow, isOurTable, sourceLabel } from '../rows.js';

/** One host port of one family: rows with the same key compete for the same packets. */
export const keyOf = (r: ListRow): string => `${r.family}|${r.protocol}|${r.hostIP ?? '*'}|${r.hostPort}`;

/** "10.244.0.5:80 (net/container/eth0) [portmap, nft inet cni_portmap]" */
export function describeRow(r: ListRow): string {
  const id = `${r.network ? `${r.network}/` : ''}${r.containerID}${r.ifname ? `/${r.ifname}` : ''}`;
  const who = r.containerID ? ` (${id})` : '';
  const plugin = r.origin === 'reference' ? 'reference plugin' : 'portmap';
  const where = `${plugin}, ${sourceLabel(r.source)}${r.chain ? ` ${r.chain}` : ''}`;
  return `${addrPort(r.podIP, r.containerPort)}${who} [${where}]`;
}

/** "tcp/8080 on 192.0.2.1 (IPv6)" */
export const hostPortText = (r: ListRow): string =>
  `${r.protocol}/${r.hostPort}${r.lastHostPort !== undefined ? `-${r.lastHostPort}` : ''}${r.hostIP ? ` on ${r.hostIP}` : ''}${r.family === 6 ? ' (IPv6)' : ''}`;

const ipPrefix = (r: ListRow): string => (r.family === 6 ? 'ip6' : 'ip');

/** The iptables nat table a row was read from. */
const natOf = (r: ListRow, iptables: readonly IptSource[]): IptSource | undefined =>
  r.source.kind === 'iptables' ? iptables.find((s) => s.family === r.family && s.flavour === (r.source as { flavour: string }).flavour) : undefined;

/**
 * The commands that remove the entries behind one row by hand (as root, each whole; "#" lines say what
 * the next ones do). Deleting the pod, or a CNI GC, removes them too: that is the first thing to say.
 */
export function removalCommands(r: ListRow, iptables: readonly IptSource[] = []): string[] {
  const s = r.source;
  if (r.origin === 'portmap-ts' && isOurTable(s)) {
    const names = mapNames(r.family);
    const [addrMap, portMap] = r.hostIP
      ? [names.hostipportsAddr, names.hostipportsPort]
      : [names.hostportsAddr, names.hostportsPort];
    const ports = r.lastHostPort !== undefined ? `${r.hostPort}-${r.lastHostPort}` : String(r.hostPort);
    const key = r.hostIP ? `${r.hostIP} . ${r.protocol} . ${ports}` : `${r.protocol} . ${ports}`;
    const del = (map: string) => commandLine(['nft', 'delete', 'element', FAMILY, TABLE, map, `{ ${key} }`]);
    // A range has no port element (its DNAT keeps the port).
    return r.lastHostPort !== undefined ? [del(addrMap)] : [del(addrMap), del(portMap)];
  }
  if (s.kind === 'iptables') {
    const ipt = `${ipPrefix(r)}tables-${s.flavour}`;
    const chain = r.chain ?? DNAT_CHAIN_PREFIX;
    const jumps = rulesOf(natOf(r, iptables)?.nat ?? { chains: new Map() }, TOP_DNAT).filter((j) => targetOf(j.args) === chain);
    return [
      ...jumps.map((j) => commandLine([ipt, '-t', 'nat', '-D', TOP_DNAT, ...j.args])),
      commandLine([ipt, '-t', 'nat', '-F', chain]),
      commandLine([ipt, '-t', 'nat', '-X', chain]),
    ];
  }
  const chainWords = [ipPrefix(r), REFERENCE_TABLE, r.chain ?? REFERENCE_HOSTPORTS_CHAIN];
  if (r.handle !== undefined) return [commandLine(['nft', 'delete', 'rule', ...chainWords, 'handle', String(r.handle)])];
  return [
    `# find the handle of the rule commented ${r.containerID ?? 'with the container id'}, then: nft delete rule ${chainWords.join(' ')} handle <handle>`,
    commandLine(['nft', '-a', 'list', 'chain', ...chainWords]),
  ];
}

/** Destinations a row never DNATs: our table's servicecidrs sets, or a CNI-DN chain's RETURN rules. */
export const excludesOf = (r: ListRow, facts: Facts): string[] =>
  r.origin === 'portmap-ts' && isOurTable(r.source) ? (facts.ruleset?.serviceCidrs ?? []) : (r.excludes ?? []);

/** Whether an address is in one of the CIDRs (texts that are not CIDRs contain nothing). */
export const inCidrs = (addr: string, cidrs: readonly string[]): boolean =>
  cidrs.some((c) => isCidr(c) && cidrContains(parseCidr(c), addr));
