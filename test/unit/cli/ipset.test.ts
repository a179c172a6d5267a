/** kube-proxy's ipvs sets from ipset save output. */
import { describe, expect, it } from 'vitest';
import { parseIpsetSave } from '../../../src/cli/ipset.js';

describe('ipset', () => {
  it('parses ipset save output of kube-proxy ipvs sets', () => {
    expect(parseIpsetSave('create KUBE-CLUSTER-IP hash:ip,port family inet\nadd KUBE-CLUSTER-IP 10.96.0.10,tcp:3306\nadd KUBE-NODE-PORT-TCP 30080\n')).toEqual([
      { kind: 'clusterIP', address: '10.96.0.10', protocol: 'tcp', port: 3306, mode: 'ipvs', source: 'ipset KUBE-CLUSTER-IP', family: 4 },
      { kind: 'nodePort', protocol: 'tcp', port: 30080, mode: 'ipvs', source: 'ipset KUBE-NODE-PORT-TCP' },
    ]);
  });
});
