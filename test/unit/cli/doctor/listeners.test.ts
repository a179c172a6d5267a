/** Processes shadowed by a hostPort. */
import { describe, expect, it } from 'vitest';
import { diagnose } from '../../../../src/cli/doctor/checks.js';
import { facts, ids, ours } from './fixtures.js';

describe('doctor: listeners', () => {
  it('listeners: wildcard and same-address listeners are shadowed, other ports, families and excluded addresses are not', () => {
    const l = (address: string, port = 3306, protocol = 'tcp') => facts({ listeners: [{ protocol, address, port, process: 'mysqld (pid 7)' }] }, { rows: [ours()], serviceCidrs: ['10.96.0.0/12'] });
    expect(ids(l('*'))).toEqual(['listener-shadowed']);
    expect(ids(l('0.0.0.0'))).toEqual(['listener-shadowed']);
    expect(ids(l('192.0.2.1'))).toEqual(['listener-shadowed']);
    expect(diagnose(l('*'))[0]!.message).toMatch(/^mysqld \(pid 7\) listens on tcp \*:3306/);
    expect(ids(l('*', 3307))).toEqual([]);
    expect(ids(l('*', 3306, 'udp'))).toEqual([]);
    expect(ids(l('2001:db8::1'))).toEqual([]);
    expect(ids(l('10.96.0.10'))).toEqual([]);
  });
});
