/** Address text helpers. */
import { describe, expect, it } from 'vitest';
import { addrPort, isCidr } from '../../../src/net/ip.js';

describe('addrPort', () => {
  it('brackets IPv6 addresses only', () => {
    expect(addrPort('10.0.0.2', 80)).toBe('10.0.0.2:80');
    expect(addrPort('2001:db8::2', 80)).toBe('[2001:db8::2]:80');
    expect(addrPort('*', 3306)).toBe('*:3306');
  });
});

describe('isCidr', () => {
  it('accepts addr/len only', () => {
    expect(isCidr('10.96.0.0/12')).toBe(true);
    expect(isCidr('fd00::/64')).toBe(true);
    expect(isCidr('10.96.0.1')).toBe(false);
    expect(isCidr('10.0.0.0/33')).toBe(false);
    expect(isCidr('x/8')).toBe(false);
  });
});
