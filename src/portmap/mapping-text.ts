/**
 * Port mappings as one short word for a log line (pure): `8080->80/tcp,5353->53/udp,[192.0.2.10]:9000->9000/tcp`.
 * Consecutive mappings that step host and container port together are one range
 * (`40000-56383->40000-56383/udp`); after MAX_ITEMS items the rest is counted (`,...+12`). One scan in
 * the order the runtime sent them (a range publish arrives in order), no sort: an ADD of 65,535
 * mappings formats its line in about a millisecond.
 */
import type { PortMapping } from './config.js';

export const MAX_ITEMS = 8;

export interface MappingText {
  text: string;
  /** How many mappings the text stands for (more than its items when ranges or the count shorten it). */
  count: number;
  /** Whether the text shortens the list (ranges, or items left out). */
  summarised: boolean;
}

const hostOf = (m: PortMapping): string => (m.hostIP === undefined ? '' : `[${m.hostIP}]:`);

export function mappingText(mappings: readonly PortMapping[], maxItems = MAX_ITEMS): MappingText {
  const items: string[] = [];
  let runs = 0;
  let summarised = false;
  for (let i = 0; i < mappings.length; ) {
    const m = mappings[i]!;
    let j = i + 1;
    while (j < mappings.length) {
      const n = mappings[j]!;
      const d = j - i;
      if (n.protocol !== m.protocol || n.hostIP !== m.hostIP || n.hostPort !== m.hostPort + d || n.containerPort !== m.containerPort + d) break;
      j++;
    }
    runs++;
    if (items.length < maxItems) {
      const last = mappings[j - 1]!;
      items.push(
        j - i === 1
          ? `${hostOf(m)}${m.hostPort}->${m.containerPort}/${m.protocol}`
          : `${hostOf(m)}${m.hostPort}-${last.hostPort}->${m.containerPort}-${last.containerPort}/${m.protocol}`,
      );
    }
    if (j - i > 1) summarised = true;
    i = j;
  }
  if (runs > items.length) {
    items.push(`...+${runs - items.length}`);
    summarised = true;
  }
  return { text: items.join(','), count: mappings.length, summarised };
}
