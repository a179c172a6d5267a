import { describe, expect, it } from 'vitest';
import { parseVersion, requireSupportedVersion, versionAtLeast } from '../../../src/cni/versions.js';
import { CniError } from '../../../src/cni/errors.js';

describe('versions', () => {
  it('parses and compares like the reference', () => {
    expect(parseVersion('1.1.0')).toEqual([1, 1, 0]);
    expect(parseVersion('1.0')).toEqual([1, 0, 0]);
    expect(versionAtLeast('0.4.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('0.3.1', '0.4.0')).toBe(false);
    expect(versionAtLeast('1.0.0', '0.4.0')).toBe(true);
    expect(versionAtLeast('1.0.0', '1.1.0')).toBe(false);
  });

  it('rejects unparseable versions with code 6 and the reference message', () => {
    try {
      parseVersion('adsfsadf');
      throw new Error('no error');
    } catch (e) {
      expect((e as CniError).code).toBe(6);
      expect((e as CniError).message).toBe('failed to convert major version part "adsfsadf": strconv.Atoi: parsing "adsfsadf": invalid syntax');
    }
  });

  it('requires an exact supported version (code 1) and lists what we support', () => {
    expect(requireSupportedVersion('0.3.1')).toBe('0.3.1');
    try {
      requireSupportedVersion('1.2.0');
      throw new Error('no error');
    } catch (e) {
      expect((e as CniError).code).toBe(1);
      expect((e as CniError).message).toBe('incompatible CNI versions');
      expect((e as CniError).details).toBe('config is "1.2.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]');
    }
  });
});
