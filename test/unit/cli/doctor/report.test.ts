/** The doctor's report: text and --json. */
import { describe, expect, it } from 'vitest';
import { formatFindings, reportJson } from '../../../../src/cli/doctor/report.js';
import { facts } from './fixtures.js';

const finding = { id: 'ip-forward-off', severity: 'error' as const, message: 'forwarding is off.', fix: 'turn it on.' };

describe('doctor report', () => {
  it('says healthy, or lists each finding with its fix', () => {
    expect(formatFindings([], 1, facts())).toBe('portmap doctor: no problems found (1 hostPort mapping checked).\n');
    const text = formatFindings([finding], 2, facts({ errors: ['nft failed'] }));
    expect(text.split('\n')).toEqual([
      'portmap doctor: 1 finding (2 hostPort mappings checked)',
      '',
      'ERROR [ip-forward-off] forwarding is off.',
      '    fix: turn it on.',
      'note: nft failed',
      '',
    ]);
  });

  it('notes a missing CNI config directory', () => {
    const text = formatFindings([], 0, facts({ cniConfDir: '/nowhere', confDirError: 'missing' }));
    expect(text).toContain('note: CNI config directory /nowhere: missing (use --cni-conf-dir DIR)');
  });

  it('--json: healthy, the number of mappings, findings and notes', () => {
    expect(JSON.parse(reportJson([finding], 3, facts({ errors: ['x'] })))).toEqual({
      healthy: false, mappings: 3, findings: [finding], notes: ['x'],
    });
  });
});
