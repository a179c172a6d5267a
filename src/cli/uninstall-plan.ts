/**
 * `portmap uninstall`, the pure part: the attachments held by our nftables table, read back into the
 * plans our backends render (so the iptables backend's own rendering re-creates them in the reference
 * plugin's layout), and the iptables-restore document of one family.
 *
 * What the table holds per attachment (render.ts): forward map elements (host port/proto/hostIP ->
 * pod address, and -> container port), a masquerade element (snat: hairpin, masqall: masqAll, none:
 * snat off), all with the owner comment `<networkId>:<ownerId> <network>/<containerID>/<ifname>`; pod
 * subnets in the podnets sets; node-wide: the hook priority (afterServices) and the Service CIDRs.
 */
import {
  type AddState, type Args, MASQ, SETMARK, TOP_DNAT, addRepairDocument, dnatChain, guardDocument, jumpToDnat, jumpToMasq,
  masqRule, needsMasqChains, setMarkRule,
} from '../backends/iptables/render.js';
import { sameRule } from '../backends/iptables/parse.js';
import { type TableState, elementIndex, keyPrefix } from '../backends/nftables/parse.js';
import { PRIORITY_AFTER_SERVICES, forwardMaps, mapNames } from '../backends/nftables/render.js';
import type { Protocol } from '../portmap/config.js';
import { type Cidr, type Family, cidrContains, parseCidr } from '../net/ip.js';
import { NFT_COMMENT_MAX, attachmentName, commentName, ownerOf, parseOwnerComment } from '../portmap/owner.js';
import type { FamilyPlan, Forward, Masquerade, Plan } from '../portmap/plan.js';

/** The default of the configuration key (the nft table does not record it). */
export const DEFAULT_MARK_MASQ_BIT = 13;

export interface Reconstructed {
  plans: Plan[];
  /** Why an attachment cannot be converted; uninstall changes nothing while there is any. */
  problems: string[];
}

export interface ReconstructOptions {
  markMasqBit?: number;
  /**
   * The pod's address with its prefix length as the runtime's result gave it (the hairpin source range),
   * e.g. from libcni's result cache; undefined: the podnets set's narrowest range holding the address.
   */
  podCidr?: (owner: { network: string; containerID: string; ifname: string }, address: string) => Cidr | undefined;
  /** Owner ids whose plans are known from elsewhere (their records): their elements are not read. */
  known?: (ownerId: string) => boolean;
}

interface Partial {
  network: string;
  containerID: string;
  ifname: string;
  comment: string;
  byFamily: Map<Family, { address: string; forwards: Forward[] }>;
}

/** Reads every attachment of our table back into a plan (pure). */
export function reconstruct(state: TableState, opts: ReconstructOptions = {}): Reconstructed {
  const problems: string[] = [];
  const afterServices = state.chains.get('prerouting')?.prio === PRIORITY_AFTER_SERVICES;
  const serviceCIDRs: Cidr[] = [];
  for (const f of [4, 6] as const) {
    for (const e of state.elements.filter((x) => x.set === mapNames(f).servicecidrs)) {
      const c = keyPrefix(e.key);
      if (c) serviceCIDRs.push(c);
    }
  }
  const owners = new Map<string, Partial>();
  const find = elementIndex(state);
  for (const f of [4, 6] as const) {
    for (const [addrMap, portMap, withHostIP] of forwardMaps(f)) {
      for (const e of state.elements.filter((x) => x.set === addrMap)) {
        const who = parseOwnerComment(e.comment);
        if (who && opts.known?.(who.id)) continue;
        const key = ((e.key as { concat?: unknown[] })?.concat ?? []) as Array<string | number>;
        const [hostIP, protocol, hostPort] = withHostIP ? key : [undefined, ...key];
        const what = `${protocol} ${hostIP ?? '*'}:${hostPort} (IPv${f})`;
        if (who && (e.comment ?? '').length >= NFT_COMMENT_MAX) {
          problems.push(`the forward ${what}: its owner comment was cut short (names too long), the attachment cannot be named (${e.comment})`);
          continue;
        }
        if (!who || who.network === undefined || who.containerID === undefined || who.ifname === undefined) {
          problems.push(`the forward ${what} has no readable owner comment (${JSON.stringify(e.comment ?? '')})`);
          continue;
        }
        const owner = ownerOf(who.network, who.containerID, who.ifname);
        if (owner.id !== who.id) {
          problems.push(`the forward ${what}: its owner comment does not match its id (${e.comment}), the attachment cannot be named`);
          continue;
        }
        const port = find(portMap, e.key);
        if (!port || typeof port.value !== 'number' || typeof e.value !== 'string' || typeof hostPort !== 'number') {
          problems.push(`the forward ${what} of ${who.network}/${who.containerID}/${who.ifname} is incomplete in the table`);
          continue;
        }
        const p = owners.get(who.id) ?? { network: who.network, containerID: who.containerID, ifname: who.ifname, comment: e.comment!, byFamily: new Map() };
        owners.set(who.id, p);
        const fam = p.byFamily.get(f) ?? { address: e.value, forwards: [] };
        p.byFamily.set(f, fam);
        if (fam.address !== e.value) {
          problems.push(`${who.network}/${who.containerID}/${who.ifname} forwards IPv${f} ports to two pod addresses (${fam.address}, ${e.value})`);
          continue;
        }
        fam.forwards.push({
          protocol: String(protocol) as Protocol,
          hostPort,
          containerPort: port.value,
          ...(hostIP !== undefined ? { hostIP: String(hostIP) } : {}),
        });
      }
    }
  }
  const conditional = new Set<string>();
  for (const r of state.rules.filter((x) => x.chain === 'conditional')) {
    const who = parseOwnerComment(r.comment);
    if (who && opts.known?.(who.id)) continue;
    const name = commentName(who) ?? JSON.stringify(r.comment ?? '');
    if (conditional.has(name)) continue;
    conditional.add(name);
    problems.push(`${name} has forwards with conditionsV4/conditionsV6 (nftables syntax, rules in chain conditional): ` +
      'the reference plugin takes iptables conditions; delete that pod, or its conditions, first');
  }
  const plans: Plan[] = [];
  for (const p of owners.values()) {
    const owner = ownerOf(p.network, p.containerID, p.ifname);
    const families: FamilyPlan[] = [];
    for (const [family, fam] of [...p.byFamily.entries()].sort(([a], [b]) => a - b)) {
      const m = mapNames(family);
      const tagged = (set: string) => state.elements.some((e) => e.set === set && e.key === fam.address && e.comment === p.comment);
      const masquerade: Masquerade = tagged(m.masqall) ? 'all' : tagged(m.snat) ? 'hairpin' : 'none';
      let pod = opts.podCidr?.(p, fam.address);
      if (!pod) {
        const nets = state.elements
          .filter((e) => e.set === m.podnets)
          .map((e) => keyPrefix(e.key))
          .filter((c): c is Cidr => c !== undefined && cidrContains(c, fam.address));
        const narrowest = nets.sort((a, b) => b.prefixLength - a.prefixLength)[0];
        if (narrowest) pod = parseCidr(`${fam.address}/${narrowest.prefixLength}`);
      }
      if (!pod) {
        if (masquerade === 'hairpin') {
          problems.push(`${attachmentName(p)}: the subnet of ${fam.address} (its hairpin source) is not in the table`);
          continue;
        }
        pod = parseCidr(`${fam.address}/${family === 4 ? 32 : 128}`);
      }
      const forwards = [...fam.forwards].sort(
        (a, b) => a.protocol.localeCompare(b.protocol) || a.hostPort - b.hostPort || (a.hostIP ?? '').localeCompare(b.hostIP ?? ''),
      );
      families.push({ family, pod, forwards, masquerade, localhost: family === 4 && masquerade === 'hairpin' });
    }
    plans.push({ owner, families, afterServices, serviceCIDRs, markMasqBit: opts.markMasqBit ?? DEFAULT_MARK_MASQ_BIT });
  }
  plans.sort((a, b) => a.owner.comment.localeCompare(b.owner.comment));
  return { plans, problems };
}

/** The chains the family document depends on: list them first (undefined: the chain does not exist). */
export function chainsToRead(plans: readonly Plan[], family: Family): string[] {
  const dn = plans.filter((p) => p.families.some((f) => f.family === family)).map((p) => dnatChain(p.owner.network, p.owner.containerID));
  return ['PREROUTING', 'OUTPUT', 'POSTROUTING', TOP_DNAT, SETMARK, MASQ, ...new Set(dn)];
}

const body = (doc: string): string[] => doc.split('\n').filter((l) => l !== '' && l !== '*nat' && l !== 'COMMIT');

/**
 * One iptables-restore --noflush document re-creating every plan's attachment of `family`, exactly as
 * the iptables backend's ADD writes one (addRepairDocument: idempotent against `state`, so running
 * uninstall again converges), the shared chains once. `inputHasGuardJump`: filter INPUT already jumps
 * to the localhost guard (only read when some attachment forwards IPv4 localhost).
 */
export function familyDocument(plans: readonly Plan[], family: Family, state: AddState, inputHasGuardJump = false): string {
  const chains = new Map(state.chains);
  const lines: string[] = [];
  let localhost = false;
  const add = (chain: string, rule: Args) => {
    const list = chains.get(chain) ?? [];
    if (!list.some((r) => sameRule(r, rule))) chains.set(chain, [...list, rule]);
  };
  for (const plan of plans) {
    for (const fp of plan.families.filter((f) => f.family === family)) {
      lines.push(...body(addRepairDocument(plan, fp, { chains }, sameRule)));
      localhost ||= fp.localhost;
      // What that document made exists for the next attachment's document.
      if (chains.get(TOP_DNAT) === undefined) chains.set(TOP_DNAT, []);
      for (const c of ['PREROUTING', 'OUTPUT']) add(c, jumpToDnat());
      if (needsMasqChains(plan, fp)) {
        add(SETMARK, setMarkRule(plan.markMasqBit));
        add(MASQ, masqRule(plan.markMasqBit));
        add('POSTROUTING', jumpToMasq());
      }
    }
  }
  if (lines.length === 0) return '';
  return `${localhost ? guardDocument(inputHasGuardJump) : ''}*nat\n${lines.join('\n')}\nCOMMIT\n`;
}
