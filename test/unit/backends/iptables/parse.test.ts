/** Reading iptables-save rules: words (quoting) and option values in any spelling. */
import { describe, expect, it } from 'vitest';
import { matchValue, tokenize } from '../../../../src/backends/iptables/parse.js';

describe('tokenize', () => {
  it('tokenizes quoted comments with escaped quotes', () => {
    expect(tokenize('-A X -m comment --comment "dnat name: \\"n\\" id: \\"c\\"" -j Y')).toEqual(['-A', 'X', '-m', 'comment', '--comment', 'dnat name: "n" id: "c"', '-j', 'Y']);
    expect(tokenize('-A X --comment ""')).toEqual(['-A', 'X', '--comment', '']);
  });
});

describe('matchValue', () => {
  const args = tokenize('! -d 10.0.0.1/32 --destination 10.0.0.2/32 -p tcp -m tcp --destination-port 80 -j DNAT');

  it('finds an option in its long spellings', () => {
    expect(matchValue(args, '-p')).toBe('tcp');
    expect(matchValue(args, '--dport')).toBe('80');
  });

  it('skips negated matches', () => {
    expect(matchValue(args, '-d')).toBe('10.0.0.2/32');
  });

  it('is undefined for an absent option, and for an option without a value', () => {
    expect(matchValue(args, '-s')).toBeUndefined();
    expect(matchValue(['-j'], '-j')).toBeUndefined();
  });
});
