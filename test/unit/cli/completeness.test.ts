/** When list and doctor may say "no mappings" or "healthy": only after reading everything. */
import { describe, expect, it } from 'vitest';
import { isPermissionText, readVerdict, verdictLines } from '../../../src/cli/completeness.js';
import type { ReadFailure } from '../../../src/cli/facts.js';

const argv = ['/opt/cni/bin/portmap', 'list', '--json'];
const nft: ReadFailure = { what: 'nft ruleset', source: 'nft -j list ruleset', error: 'exit 1: Operation not permitted (you must be root)', permission: true, rules: true };
const legacy6: ReadFailure = { what: 'iptables-legacy nat table (IPv6)', source: 'ip6tables-legacy-save -t nat', error: 'exit 1: ip6tables-legacy-save: unknown error', permission: false, rules: true };
const records: ReadFailure = { what: "portmap's records", source: '/var/lib/cni/portmap/netns-4-1', error: "EACCES: permission denied, scandir '/var/lib/cni/portmap/netns-4-1'", permission: true, rules: false };

describe('readVerdict', () => {
  it('is complete when nothing failed', () => {
    expect(readVerdict({ unreadable: [], rulesRead: 2, privilege: { uid: 0 } }, 'all', argv)).toEqual({ complete: true, failures: [], nothingRead: false });
  });

  it('not root: nothing read, the reason, and the command to run instead (quoted for the shell)', () => {
    const v = readVerdict({ unreadable: [nft], rulesRead: 0, privilege: { uid: 1000 } }, 'rules', ['/opt/my dir/portmap', 'list']);
    expect(v).toMatchObject({ complete: false, nothingRead: true, rerun: "sudo '/opt/my dir/portmap' list" });
    expect(v.reason).toBe("not running as root (uid 1000): reading the kernel's nft and iptables rules needs root (CAP_NET_ADMIN)");
  });

  it('root without CAP_NET_ADMIN (a container) says so', () => {
    const v = readVerdict({ unreadable: [nft], rulesRead: 0, privilege: { uid: 0, netAdmin: false } }, 'rules', argv);
    expect(v.reason).toMatch(/^running without CAP_NET_ADMIN/);
    expect(v.rerun).toBe('sudo /opt/cni/bin/portmap list --json');
  });

  it('a partial read (one table failed, not for privileges) is incomplete, without a sudo line', () => {
    const v = readVerdict({ unreadable: [legacy6], rulesRead: 3, privilege: { uid: 0 } }, 'rules', argv);
    expect(v).toMatchObject({ complete: false, nothingRead: false, reason: "one source of the node's state could not be read" });
    expect(v.rerun).toBeUndefined();
    expect(verdictLines('list', v)).toEqual([
      "portmap list: the report is incomplete: one source of the node's state could not be read.",
      '  not read:',
      '    iptables-legacy nat table (IPv6) (ip6tables-legacy-save -t nat): exit 1: ip6tables-legacy-save: unknown error',
    ]);
  });

  it('list needs the rules only; doctor also its records', () => {
    const input = { unreadable: [records], rulesRead: 2, privilege: { uid: 0 } };
    expect(readVerdict(input, 'rules', argv).complete).toBe(true);
    const v = readVerdict(input, 'all', argv);
    expect(v.complete).toBe(false);
    expect(v.reason).toBe("permission denied: reading portmap's records needs root");
  });

  it('knows the tools\' permission errors', () => {
    expect(isPermissionText('iptables-nft-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)')).toBe(true);
    expect(isPermissionText('netlink: Error: cache initialization failed: Operation not permitted')).toBe(true);
    expect(isPermissionText('Error: syntax error, unexpected junk')).toBe(false);
  });
});
