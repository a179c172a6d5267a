import { describe, expect, it } from 'vitest';
import { closestKey, editDistance, lintConfig } from '../../../src/portmap/config-lint.js';

const base = { cniVersion: '1.0.0', name: 'net', type: 'portmap', capabilities: { portMappings: true } };

describe('lintConfig', () => {
  it('finds nothing in a clean entry, runtimeConfig, prevResult and GC keys included', () => {
    expect(lintConfig({ ...base, backend: 'nftables', afterServices: true, serviceCIDRs: ['10.96.0.0/12'], runtimeConfig: {}, prevResult: {}, 'cni.dev/valid-attachments': [], logFile: '/var/log/portmap.log' })).toEqual([]);
  });

  it('names the intended key for typos', () => {
    const w = lintConfig({ ...base, afterService: true, serviceCIRDs: [], bakend: 'iptables', masqall: true });
    expect(w.map((x) => [x.key, x.suggestion])).toEqual([
      ['afterService', 'afterServices'],
      ['serviceCIRDs', 'serviceCIDRs'],
      ['bakend', 'backend'],
      ['masqall', 'masqAll'],
    ]);
    expect(w[0]!.msg).toBe('unknown key "afterService" is ignored: did you mean "afterServices"?');
    expect(w[3]!.msg).toContain('is read as "masqAll"');
  });

  it('says when a case variant is shadowed by the exact key', () => {
    const [w] = lintConfig({ ...base, snat: true, SNAT: false });
    expect(w!.msg).toBe('"SNAT" is ignored: "snat" is also set');
  });

  it('gives no suggestion for a key that resembles nothing', () => {
    const [w] = lintConfig({ ...base, frobnicate: 1 });
    expect(w).toEqual({ key: 'frobnicate', msg: 'unknown key "frobnicate" is ignored' });
  });

  it('warns that nftables ignores markMasqBit, only when nftables runs it', () => {
    expect(lintConfig({ ...base, backend: 'nftables', markMasqBit: 5 }).map((w) => w.key)).toEqual(['markMasqBit']);
    expect(lintConfig({ ...base, markMasqBit: 5 })).toEqual([]);
    expect(lintConfig({ ...base, markMasqBit: 5 }, 'nftables').map((w) => w.key)).toEqual(['markMasqBit']);
    expect(lintConfig({ ...base, backend: 'iptables', markMasqBit: 5 })).toEqual([]);
  });

  it('warns about a capabilities object without portMappings', () => {
    expect(lintConfig({ ...base, capabilities: { portmappings: true } }).map((w) => w.key)).toEqual(['capabilities']);
    expect(lintConfig({ ...base, capabilities: { portMappings: 'yes' } }).map((w) => w.key)).toEqual(['capabilities']);
  });
});

describe('closestKey', () => {
  it('matches by edit distance or by a shared start', () => {
    expect(editDistance('afterService', 'afterServices')).toBe(1);
    expect(closestKey('externalSetMark')).toBe('externalSetMarkChain');
    expect(closestKey('ab')).toBeUndefined();
  });
});
