/** The doctor's report: text and --json, complete or not. */
import { describe, expect, it } from 'vitest';
import { readVerdict } from '../../../../src/cli/completeness.js';
import type { Facts, ReadFailure } from '../../../../src/cli/facts.js';
import { formatFindings, reportJson } from '../../../../src/cli/doctor/report.js';
import type { Finding } from '../../../../src/cli/doctor/finding.js';
import { facts } from './fixtures.js';

const finding: Finding = {
  id: 'ip-forward-off', severity: 'error', message: 'forwarding is off.', fix: 'Turn it on:',
  commands: ['sysctl -w net.ipv4.ip_forward=1', `echo ${'x'.repeat(120)} > /etc/sysctl.d/99-forward.conf`],
};
const nftDenied: ReadFailure = {
  what: 'nft ruleset', source: 'nft -j list ruleset', error: 'exit 1: Operation not permitted (you must be root)', permission: true, rules: true,
};
/** The text with its wrapping undone (prose may wrap; what it says may not change). */
const flat = (text: string): string => text.replace(/\s+/g, ' ');
const verdict = (f: Facts) => readVerdict(f, 'all', ['/opt/cni/bin/portmap', 'doctor']);

describe('doctor report', () => {
  it('says healthy only when everything was read and nothing found', () => {
    const f = facts();
    expect(formatFindings([], 1, f, verdict(f))).toBe('portmap doctor: no problems found (1 hostPort mapping checked).\n');
    expect(JSON.parse(reportJson([], 1, f, verdict(f)))).toMatchObject({ healthy: true, complete: true, unreadable: [], mappings: 1, findings: [] });
  });

  it('prints each command of a fix on its own indented line, whole, however long', () => {
    const f = facts({ errors: ['ss failed'] });
    const lines = formatFindings([finding], 2, f, verdict(f)).split('\n');
    expect(lines.slice(0, 6)).toEqual([
      'portmap doctor: 1 finding (2 hostPort mappings checked)',
      '',
      'ERROR [ip-forward-off] forwarding is off.',
      '    fix: Turn it on:',
      '        sysctl -w net.ipv4.ip_forward=1',
      `        echo ${'x'.repeat(120)} > /etc/sysctl.d/99-forward.conf`,
    ]);
    expect(lines).toContain('note: ss failed');
  });

  it('never says healthy or "no problems" when something could not be read; --json says so twice', () => {
    const f = facts({ unreadable: [nftDenied], rulesRead: 0, privilege: { uid: 65534 } });
    const v = verdict(f);
    const text = formatFindings([], 0, f, v);
    expect(text).not.toMatch(/no problems/);
    expect(text).toMatch(/^portmap doctor: could not read the node's hostPort rules: not running as root \(uid 65534\)/);
    expect(text).toContain('\n    sudo /opt/cni/bin/portmap doctor\n');
    expect(text).toContain('nft ruleset (nft -j list ruleset): exit 1: Operation not permitted (you must be root)');
    expect(flat(text)).toMatch(/nothing found in what could be read .* not known to be healthy/);
    const doc = JSON.parse(reportJson([], 0, f, v)) as Record<string, unknown>;
    expect(doc).toMatchObject({ healthy: false, complete: false, rerun: 'sudo /opt/cni/bin/portmap doctor', unreadable: [nftDenied] });
    expect(doc.reason).toMatch(/not running as root/);
  });

  it('notes a missing CNI config directory, and which file the runtime loads', () => {
    const f = facts({ cniConfDir: '/nowhere', confDirError: 'missing' });
    expect(formatFindings([], 0, f, verdict(f))).toContain('note: CNI config directory /nowhere: missing (use --cni-conf-dir DIR)');
    const list = (name: string) => JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'bridge' }] });
    const two = facts({ cniConfDir: '/n', confFiles: [{ file: '/n/05-x.conflist', text: '{' }, { file: '/n/10-a.conflist', text: list('a') }, { file: '/n/20-b.conflist', text: list('b') }] });
    expect(flat(formatFindings([], 0, two, verdict(two)))).toContain(
      'note: CNI configuration: the runtime loads /n/10-a.conflist (the first file of the directory that loads); containerd and CRI-O ignore /n/05-x.conflist, /n/20-b.conflist',
    );
    expect(JSON.parse(reportJson([], 0, two, verdict(two))).cniConfig).toEqual({ dir: '/n', loads: '/n/10-a.conflist', ignored: ['/n/05-x.conflist', '/n/20-b.conflist'] });
  });

  it('notes tools that are installed but not on PATH', () => {
    const f = facts({ offPath: { nft: '/usr/sbin/nft' }, path: '/usr/bin:/bin' });
    expect(flat(formatFindings([], 0, f, verdict(f)))).toContain('note: installed but not on PATH (/usr/bin:/bin): nft (/usr/sbin/nft); portmap runs it from there');
  });
});
