/** Every file of the CNI configuration directory, read from fixture directories as doctor reads them. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkConflists, loadedNote } from '../../../../src/cli/doctor/conflists.js';
import { checkDrift } from '../../../../src/cli/doctor/drift.js';
import type { Finding } from '../../../../src/cli/doctor/finding.js';
import type { Facts } from '../../../../src/cli/facts.js';
import { readConfDir } from '../../../../src/cli/gather.js';
import { facts, ids } from './fixtures.js';

const DIRS = join(import.meta.dirname, 'confdirs');

/** The facts of one fixture directory, read by the gatherer doctor uses. */
async function dir(name: string): Promise<Facts> {
  const f = facts();
  f.unreadable = [];
  await readConfDir(f, join(DIRS, name));
  return f;
}

const only = (found: Finding[], id: string): Finding[] => found.filter((x) => x.id === id);

describe('doctor: the CNI configuration directory', () => {
  it('a value every ADD rejects ("backend": "nft") is an error naming the file, the plugin entry and the key', async () => {
    const f = await dir('nft-backend');
    const found = checkConflists(f);
    expect(found.map((x) => x.id)).toEqual(['conflist-invalid-value']);
    const file = join(DIRS, 'nft-backend', '10-bridge.conflist');
    expect(found[0]!.severity).toBe('error');
    expect(found[0]!.message.startsWith(`${file}: plugins[1] (portmap): unrecognized backend "nft": backend must be "nftables" or "iptables".`)).toBe(true);
    expect(found[0]!.where).toEqual({ file, plugin: 1, key: 'backend' });
  });

  it('misspelt keys, case variants and options the backend ignores: one warning each, with the key meant', async () => {
    const found = checkConflists(await dir('typos'));
    const file = join(DIRS, 'typos', '10-podnet.conflist');
    expect(found.map((x) => [x.id, x.severity, x.where])).toEqual([
      ['conflist-config-warning', 'warning', { file, plugin: 1, key: 'afterService', suggestion: 'afterServices' }],
      ['conflist-config-warning', 'warning', { file, plugin: 1, key: 'ServiceCIDRs', suggestion: 'serviceCIDRs' }],
      ['conflist-config-warning', 'warning', { file, plugin: 1, key: 'markMasqBit' }],
    ]);
    expect(found[0]!.message).toBe(`${file}: plugins[1] (portmap): unknown key "afterService" is ignored: did you mean "afterServices"?`);
    expect(found[0]!.fix).toMatch(/Write "afterServices" instead of "afterService"/);
  });

  it('a file that is not JSON, sorting first: an error with its line and column; the runtime loads the next one', async () => {
    const f = await dir('broken-first');
    const found = checkConflists(f);
    expect(found.map((x) => x.id)).toEqual(['conflist-invalid']);
    expect(found[0]!.severity).toBe('error');
    expect(found[0]!.message).toContain(`${join(DIRS, 'broken-first', '05-old.conflist')} cannot be loaded: it is not valid JSON (line 4, column 36: expected a value (no comma before "]"), found "]")`);
    expect(found[0]!.message).toMatch(/containerd \(go-cni\) stops loading the CNI configuration at this file/);
    expect(loadedNote(f)).toEqual({ loads: join(DIRS, 'broken-first', '10-podnet.conflist'), ignored: [join(DIRS, 'broken-first', '05-old.conflist')] });
  });

  it('a broken file after the one loaded is a warning (the runtime does not read it now)', async () => {
    const found = checkConflists(await dir('broken-after'));
    expect(found.map((x) => [x.id, x.severity])).toEqual([['conflist-invalid', 'warning']]);
    expect(found[0]!.message).toMatch(/20-extra\.json cannot be loaded: it is not valid JSON \(line 2, column 1: expected "," or "}", found the end of the file\); the runtime does not read it now/);
  });

  it('a .conf holding a plugins list: the fix renames it, with the command whole', async () => {
    const f = await dir('conf-with-list');
    const found = checkConflists(f);
    expect(found.map((x) => x.id)).toEqual(['conf-holds-plugin-list']);
    const file = join(DIRS, 'conf-with-list', '10-podnet.conf');
    expect(found[0]!.commands).toEqual([`mv ${file} ${file}list`]);
    expect(loadedNote(f)).toEqual({ ignored: [file] });
    // the drift audit no longer reports it a second time
    expect(checkDrift({ records: [], invalidRecords: [], dataDir: '/d', cache: [], cacheDir: '/c', confFiles: f.confFiles! }).map((x) => x.id)).toEqual([]);
  });

  it('portmap entries without the portMappings capability: an error where the runtime loads it, a warning elsewhere', async () => {
    const f = await dir('no-capability');
    expect(f.confFiles!.map((c) => c.file.split('/').pop())).toEqual(['10-podnet.conflist', '20-other.conflist']);
    const found = only(checkConflists(f), 'conflist-missing-capability');
    expect(found.map((x) => [x.where?.file.split('/').pop(), x.severity])).toEqual([['10-podnet.conflist', 'error'], ['20-other.conflist', 'warning']]);
    expect(found[1]!.message).toMatch(/the runtime does not load this file: it loads .*10-podnet\.conflist/);
  });

  it('single-plugin files and lists libcni refuses', () => {
    const file = (name: string, text: string) => facts({ confFiles: [{ file: `/etc/cni/net.d/${name}`, text }] });
    expect(ids(file('10.conf', '{"cniVersion":"1.0.0","name":"n","type":"portmap"}'))).toEqual(['conflist-missing-capability']);
    expect(ids(file('10.conf', '{"cniVersion":"1.0.0","name":"n","type":"portmap","capabilities":{"portMappings":true},"snat":"yes"}'))).toEqual(['conflist-invalid-value']);
    expect(ids(file('10.conflist', '{"cniVersion":"1.0.0","plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}'))).toEqual(['conflist-invalid']);
    expect(ids(file('10.conflist', '{"cniVersion":"1.0.0","name":"n","plugins":[]}'))).toEqual(['conflist-invalid']);
    expect(ids(file('10.conflist', '{"cniVersion":"9.9.9","name":"n","plugins":[{"type":"portmap","capabilities":{"portMappings":true}}]}'))).toEqual(['conflist-invalid-value']);
    expect(ids(file('10.conflist', '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}'))).toEqual([]);
  });
});
