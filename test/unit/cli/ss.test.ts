/** Listeners from ss output. */
import { describe, expect, it } from 'vitest';
import { parseSs } from '../../../src/cli/ss.js';

describe('ss', () => {
  it('parses ss -Hltunp with wildcard, v6 and scoped addresses', () => {
    const text = [
      'udp UNCONN 0      0      *:8080 *:* users:(("node",pid=19725,fd=20))',
      'tcp LISTEN 0      511    127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=1,fd=3))',
      'tcp LISTEN 0      511    [::1]:9000 [::]:*',
    ].join('\n');
    expect(parseSs(text)).toEqual([
      { protocol: 'udp', address: '*', port: 8080, process: 'node (pid 19725)' },
      { protocol: 'tcp', address: '127.0.0.53', port: 53, process: 'systemd-resolve (pid 1)' },
      { protocol: 'tcp', address: '::1', port: 9000 },
    ]);
  });
});
