/** Reading nft listings: the prefixes of interval-set keys. */
import { describe, expect, it } from 'vitest';
import { keyPrefix } from '../../../../src/backends/nftables/parse.js';
import { cidrText } from '../../../../src/net/ip.js';

describe('keyPrefix', () => {
  const text = (key: unknown) => {
    const p = keyPrefix(key);
    return p && cidrText(p);
  };

  it('reads prefix keys and bare addresses (one-address intervals)', () => {
    expect(text({ prefix: { addr: '10.96.0.0', len: 12 } })).toBe('10.96.0.0/12');
    expect(text('10.96.0.10')).toBe('10.96.0.10/32');
    expect(text('fd00::1')).toBe('fd00::1/128');
    expect(text('fd00::/64')).toBe('fd00::/64');
  });

  it('is undefined for anything else', () => {
    expect(keyPrefix({ range: ['10.0.0.1', '10.0.0.9'] })).toBeUndefined();
    expect(keyPrefix('not-an-address')).toBeUndefined();
    expect(keyPrefix({ prefix: { addr: '10.0.0.0', len: 40 } })).toBeUndefined();
    expect(keyPrefix(null)).toBeUndefined();
  });
});
