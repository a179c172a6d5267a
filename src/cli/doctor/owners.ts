/** Two owners for one host port: one of them receives nothing. */
import type { Facts } from '../facts.js';
import type { ListRow } from '../rows.js';
import { IPT_NAT_PRIORITY, describeRow, keyOf, mapping, removalHint } from './describe.js';
import type { Finding } from './finding.js';

/** Priority of the NAT prerouting hook that holds a row (lower runs first). */
function rowPriority(r: ListRow, facts: Facts): number | undefined {
  if (r.source.startsWith('iptables')) return IPT_NAT_PRIORITY;
  if (r.origin === 'portmap-ts') return facts.ruleset?.ourPriority;
  const fam = r.family === 4 ? 'ip' : 'ip6';
  return facts.ruleset?.natChains.find((c) => c.table === 'cni_hostport' && c.family === fam && c.hook === 'prerouting')?.prio;
}

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
