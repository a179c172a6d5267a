/** Two owners for one host port: one of them receives nothing. */
import { NAT_HOOK_PRIORITY, TOP_DNAT } from '../../backends/iptables/render.js';
import { REFERENCE_TABLE } from '../../backends/nftables/read.js';
import type { Facts } from '../facts.js';
import { type ListRow, sourceLabel } from '../rows.js';
import { describeRow, keyOf, hostPortText, removalCommands } from './describe.js';
import type { Finding } from './finding.js';

/** Priority of the NAT prerouting hook that holds a row (lower runs first). */
function rowPriority(r: ListRow, facts: Facts): number | undefined {
  const s = r.source;
  if (s.kind === 'iptables') return NAT_HOOK_PRIORITY;
  if (s.table !== REFERENCE_TABLE) return facts.ruleset?.ourPriority;
  const hook = (c: { table: string; family: string; hook: string }) =>
    c.table === REFERENCE_TABLE && c.family === s.family && c.hook === 'prerouting';
  return facts.ruleset?.natChains.find(hook)?.prio;
}

/** The owner that receives new connections, and why; none when the order of the tables decides. */
function winnerOf(list: readonly ListRow[], facts: Facts): { winner?: ListRow; why: string; best: number } {
  // Lower hook priority runs first; in one iptables table the earlier CNI-HOSTPORT-DNAT jump wins.
  const ranked = list
    .map((r) => ({ r, prio: rowPriority(r, facts) ?? NAT_HOOK_PRIORITY }))
    .sort((a, b) => a.prio - b.prio);
  const best = ranked[0]!.prio;
  const top = ranked.filter((x) => x.prio === best).map((x) => x.r);
  if (new Set(top.map((r) => sourceLabel(r.source))).size > 1) return { why: '', best };
  // Same table: iptables rows come in jump order (allRows keeps it), the first one wins.
  const why = top.length > 1 ? `its jump comes first in ${TOP_DNAT}` : `its NAT hook priority (${best}) runs first`;
  return { winner: top[0]!, why, best };
}

function ownersMessage(list: readonly ListRow[], facts: Facts): { message: string; winner?: ListRow } {
  const { winner, why, best } = winnerOf(list, facts);
  const head = `Host port ${hostPortText(list[0]!)} has ${list.length} owners`;
  if (!winner) {
    return {
      message: `${head} in different tables at the same NAT priority (${best}): ${list.map(describeRow).join(', ')}. ` +
        'Which one receives a new connection depends on the order the tables were registered.',
    };
  }
  const others = list.filter((r) => r !== winner);
  return {
    winner,
    message: `${head}. ${describeRow(winner)} receives the traffic (${why}); ` +
      `${others.map(describeRow).join(', ')} never ${others.length > 1 ? 'do' : 'does'}.`,
  };
}

/** Two owners of one host port (IPv4 and IPv6 twins are reported once). */
export function checkDuplicateOwners(facts: Facts, rows: readonly ListRow[]): Finding[] {
  const groups = new Map<string, ListRow[]>();
  for (const r of rows) groups.set(keyOf(r), [...(groups.get(keyOf(r)) ?? []), r]);
  const out: Array<Finding & { sig: string }> = [];
  for (const group of groups.values()) {
    const owners = new Map<string, ListRow>();
    for (const r of group) {
      owners.set(`${sourceLabel(r.source)}|${r.chain ?? ''}|${r.containerID ?? ''}|${r.podIP}`, r);
    }
    if (owners.size < 2) continue;
    const list = [...owners.values()];
    const { message, winner } = ownersMessage(list, facts);
    const first = list[0]!;
    const ownerIds = list.map((r) => r.containerID ?? r.podIP).sort().join(',');
    const sig = `${first.protocol}|${first.hostIP ?? '*'}|${first.hostPort}|${ownerIds}|${winner?.containerID ?? ''}`;
    const twin = out.find((f) => f.sig === sig);
    const commands = list.flatMap((r) => [`# remove ${describeRow(r)}:`, ...removalCommands(r, facts.iptables)]);
    if (twin) {
      twin.message = twin.message.replace(/^Host port (\S+)( on \S+)?/, (m) => `${m} (IPv4 and IPv6)`);
      // The other family's entries are separate rules: their commands too.
      twin.commands = [...(twin.commands ?? []), ...commands];
      continue;
    }
    out.push({
      sig,
      id: 'duplicate-hostport',
      severity: 'error',
      message,
      fix: 'Keep the owner that belongs to a running pod and remove the stale one(s): delete the stale pod (its DEL ' +
        'removes its entries) or run a CNI GC; by hand, the commands below remove one owner\'s entries each.',
      commands,
    });
  }
  return out.map(({ sig: _sig, ...f }) => f);
}
