import { describe, expect, it } from 'vitest';
import { formatRestore, parseRestoreArgs } from '../../../src/cli/restore.js';

describe('portmap restore / watch options and report', () => {
  it('parses the options, with defaults; refuses relative directories and unknown options', () => {
    expect(parseRestoreArgs([])).toMatchObject({ json: false, dataDir: '/var/lib/cni/portmap', cacheDir: '/var/lib/cni/results', adopt: true, force: false, dryRun: false, legacyInterval: 2 });
    expect(parseRestoreArgs(['--json', '--data-dir', '/d', '--cni-cache-dir=/c', '--no-adopt', '--force', '--dry-run', '--legacy-interval', '0.5', '--help']))
      .toMatchObject({ json: true, dataDir: '/d', cacheDir: '/c', adopt: false, force: true, dryRun: true, legacyInterval: 0.5, help: true });
    expect(parseRestoreArgs(['--data-dir', 'rel'])).toEqual({ bad: '--data-dir needs an absolute directory' });
    expect(parseRestoreArgs(['--bogus'])).toEqual({ bad: 'unknown option "--bogus"' });
  });

  it('reports what it restored, what was intact and what it skipped and why', () => {
    const text = formatRestore({
      ok: true,
      restored: [{ name: 'net/a/eth0', backend: 'nftables', forwards: 2 }, { name: 'net/b/eth0', backend: 'nftables', forwards: 1, adopted: true }],
      intact: [],
      skipped: [{ name: 'net/c/eth0', reason: 'pod gone: its network namespace /x is gone', removed: true }],
      backends: [{ backend: 'nftables', attachments: 2, damage: ['table inet cni_portmap is missing'], restored: true }],
    });
    expect(text).toMatch(/^portmap restore: restored 2 attachments, 0 intact, 1 skipped \(nftables: table inet cni_portmap is missing\)/);
    expect(text).toMatch(/restored +net\/b\/eth0 +nftables +1 forward \(adopted from the libcni cache\)/);
    expect(text).toMatch(/skipped +net\/c\/eth0 .*pod gone.*\(record removed\)/);
  });
});
