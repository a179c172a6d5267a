/** The options of list and doctor. */
import { describe, expect, it } from 'vitest';
import { parseDoctorArgs } from '../../../src/cli/doctor/run.js';
import { parseListArgs } from '../../../src/cli/list.js';

describe('list and doctor options', () => {
  it('list: --json/-j, --data-dir DIR or =DIR, --help/-h; anything else is a usage error', () => {
    expect(parseListArgs([])).toEqual({ json: false, dataDir: '/var/lib/cni/portmap', help: false });
    expect(parseListArgs(['-j', '--data-dir=/d'])).toEqual({ json: true, dataDir: '/d', help: false });
    expect(parseListArgs(['--data-dir', '/d', '-h'])).toEqual({ json: false, dataDir: '/d', help: true });
    expect(parseListArgs(['--bogus'])).toEqual({ error: 'unknown option "--bogus"' });
    expect(parseListArgs(['--data-dir'])).toEqual({ error: '--data-dir needs a directory' });
    expect(parseListArgs(['--json=yes'])).toEqual({ error: '--json takes no value' });
  });

  it('doctor: the three directories (made absolute), --json, --help', () => {
    expect(parseDoctorArgs(['--cni-conf-dir', '/n', '--data-dir=/d', '--cni-cache-dir', '/c', '--json']))
      .toEqual({ json: true, cniConfDir: '/n', dataDir: '/d', cniCacheDir: '/c', help: false });
    expect(parseDoctorArgs(['--help'])).toMatchObject({ help: true, cniConfDir: '/etc/cni/net.d' });
    expect(parseDoctorArgs(['--cni-conf-dir', 'rel'])).toMatchObject({ cniConfDir: `${process.cwd()}/rel` });
    expect(parseDoctorArgs(['list'])).toEqual({ error: 'unknown option "list"' });
  });
});
