import { describe, expect, it } from 'vitest';
import { runCni, type PluginVerbs, type Call } from '../../../src/cni/skel.js';

const env = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', CNI_NETNS_OVERRIDE: '1' };
const conf = { cniVersion: '1.0.0', name: 'net', type: 'portmap' };

async function call(e: Record<string, string>, stdin: string, verbs: Partial<PluginVerbs> = {}) {
  let out = '';
  const seen: Call[] = [];
  const plugin: PluginVerbs = {
    add: async (c) => {
      seen.push(c);
      return { cniVersion: c.config.cniVersion, ips: [] };
    },
    del: async (c) => void seen.push(c),
    check: async (c) => void seen.push(c),
    gc: async (c) => void seen.push(c),
    status: async (c) => void seen.push(c),
    ...verbs,
  };
  const code = await runCni({ env: e, stdin: async () => stdin, stdout: (t) => (out += t) }, async () => plugin);
  return { code, out: out ? (JSON.parse(out) as Record<string, unknown>) : undefined, seen };
}

describe('runCni', () => {
  it('dispatches ADD and prints its result', async () => {
    const r = await call(env, JSON.stringify(conf));
    expect(r.code).toBe(0);
    expect(r.out).toEqual({ cniVersion: '1.0.0', ips: [] });
    expect(r.seen[0]?.args.containerId).toBe('c1');
  });

  it.each([
    ['', 6, 'error unmarshall network config: unexpected end of JSON input'],
    ['{"name":', 6, 'error unmarshall network config'],
    ['[1]', 6, 'error unmarshall network config'],
    ['null', 7, 'missing network name'],
    ['{"cniVersion":"1.0.0"}', 7, 'missing network name'],
    ['{"cniVersion":"1.0.0","name":"bad name"}', 7, 'invalid characters found in network name'],
    ['{"cniVersion":"9.0.0","name":"n"}', 1, 'incompatible CNI versions'],
    ['{"cniVersion":1,"name":"n"}', 6, 'decoding version'],
  ])('stdin %j gives code %i', async (stdin, code, msg) => {
    const r = await call(env, stdin);
    expect(r.code).toBe(1);
    expect(r.out?.code).toBe(code);
    expect(String(r.out?.msg)).toContain(msg);
    expect(r.out).toHaveProperty('details');
    expect(r.out).toHaveProperty('cniVersion');
    expect(r.seen).toHaveLength(0);
  });

  it('hands the plugin the raw configuration: its own keys are not parsed here', async () => {
    const raw = { ...conf, runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 1 }] }, extra: [1] };
    const r = await call(env, JSON.stringify(raw));
    expect(r.code).toBe(0);
    expect(r.seen[0]?.config).toEqual(raw);
  });

  it('missing cniVersion means 0.1.0', async () => {
    const r = await call(env, '{"name":"n"}');
    expect(r.code).toBe(0);
    expect(r.out?.cniVersion).toBe('0.1.0');
  });

  it('enforces the minimum versions of CHECK, GC and STATUS', async () => {
    const check = await call({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, cniVersion: '0.3.1' }));
    expect(check.out).toMatchObject({ code: 1, msg: 'config version does not allow CHECK' });
    const gc = await call({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, JSON.stringify(conf));
    expect(gc.out).toMatchObject({ code: 1, msg: 'config version does not allow GC' });
    const status = await call({ CNI_COMMAND: 'STATUS', CNI_PATH: '/x' }, JSON.stringify({ ...conf, cniVersion: '1.1.0' }));
    expect(status.code).toBe(0);
    const bad = await call({ ...env, CNI_COMMAND: 'CHECK' }, JSON.stringify({ ...conf, cniVersion: 'adsfsadf' }));
    expect(bad.out).toMatchObject({ code: 6 });
  });

  it('rejects unknown commands with code 4 after validating stdin', async () => {
    expect((await call({ ...env, CNI_COMMAND: 'NOPE' }, JSON.stringify(conf))).out).toMatchObject({ code: 4, msg: 'unknown CNI_COMMAND: NOPE' });
    expect((await call({ ...env, CNI_COMMAND: 'NOPE' }, 'x')).out).toMatchObject({ code: 6 });
  });

  it('prints a plugin error as one error object with the config version', async () => {
    const r = await call({ ...env, CNI_COMMAND: 'DEL' }, JSON.stringify({ ...conf, cniVersion: '0.4.0' }), {
      del: async () => {
        throw new Error('banana');
      },
    });
    expect(r.code).toBe(1);
    expect(r.out).toEqual({ cniVersion: '0.4.0', code: 999, msg: 'banana', details: '' });
  });

  it('refuses CNI_NETNS naming its own namespace', async () => {
    const { CNI_NETNS_OVERRIDE: _o, ...strict } = env;
    const r = await call({ ...strict, CNI_NETNS: '/proc/self/ns/net' }, JSON.stringify(conf));
    expect(r.out).toMatchObject({ code: 8 });
  });
});
