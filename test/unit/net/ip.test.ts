/** Address text helpers. */
import { describe, expect, it } from 'vitest';
import { addrPort } from '../../../src/net/ip.js';

describe('addrPort', () => {
  it('brackets IPv6 addresses only', () => {
    expect(addrPort('10.0.0.2', 80)).toBe('10.0.0.2:80');
    expect(addrPort('2001:db8::2', 80)).toBe('[2001:db8::2]:80');
    expect(addrPort('*', 3306)).toBe('*:3306');
  });
});
