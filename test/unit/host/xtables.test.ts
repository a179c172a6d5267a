/** The legacy-table probe reads the kernel's list of x_tables tables, never iptables-legacy. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LEGACY_TABLES_FILE, legacyTables } from '../../../src/host/xtables.js';

describe('legacyTables', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pm-xtables-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the tables of the file, one a line', () => {
    const file = join(dir, 'ip_tables_names');
    writeFileSync(file, 'filter\nnat\n\n');
    expect(legacyTables(4, file)).toEqual(['filter', 'nat']);
  });

  it('has none when the file cannot be read (no x_tables module loaded)', () => {
    expect(legacyTables(6, join(dir, 'missing'))).toEqual([]);
  });

  it('reads the file of the family', () => {
    expect(LEGACY_TABLES_FILE).toEqual({ 4: '/proc/net/ip_tables_names', 6: '/proc/net/ip6_tables_names' });
  });
});
