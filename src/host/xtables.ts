/**
 * Which legacy (x_tables) iptables tables exist in this network namespace. The kernel lists them in
 * /proc/net/ip_tables_names (IPv4) and /proc/net/ip6_tables_names (IPv6): reading that spawns nothing
 * and, unlike running iptables-legacy, never creates a table (and so never registers its NAT hooks).
 */
import { readFileSync } from 'node:fs';
import type { Family } from '../net/ip.js';

export const LEGACY_TABLES_FILE: Record<Family, string> = {
  4: '/proc/net/ip_tables_names',
  6: '/proc/net/ip6_tables_names',
};

/** The legacy tables of one family (`nat`, `filter`, ...); none when the file cannot be read. */
export function legacyTables(family: Family, file = LEGACY_TABLES_FILE[family]): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  } catch {
    return [];
  }
}
