import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PLUGIN, TestBed, inNs, sh } from './harness.js';

/** The bundled executable, exec'd as a runtime does: env + stdin in, JSON out. */
async function exec(env: Record<string, string>, stdin: string) {
  const res = await sh([PLUGIN], { input: stdin, env: { PATH: process.env.PATH ?? '', ...env }, ok: [1, 2] });
  return { code: res.code, stdout: res.stdout, stderr: res.stderr, json: res.stdout ? (JSON.parse(res.stdout) as Record<string, unknown>) : undefined };
}

const addEnv = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c1', CNI_NETNS: '/var/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' };

describe('the executable speaks the CNI protocol', () => {
  it('answers VERSION with the input cniVersion and every supported version', async () => {
    const r = await exec({ CNI_COMMAND: 'VERSION' }, '{"cniVersion":"0.4.0"}');
    expect(r.code).toBe(0);
    expect(r.json).toEqual({ cniVersion: '0.4.0', supportedVersions: ['0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] });
    const noInput = await exec({ CNI_COMMAND: 'VERSION' }, '');
    expect(noInput.json?.cniVersion).toBe('1.1.0');
  });

  it.each([
    [{ CNI_COMMAND: 'ADD' }, '{}', 4, 'required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing'],
    [{ CNI_COMMAND: 'DEL', CNI_IFNAME: 'eth0', CNI_PATH: '/x' }, '{}', 4, 'required env variables [CNI_CONTAINERID] missing'],
    [{ ...addEnv, CNI_CONTAINERID: 'bad id' }, '{}', 4, 'invalid characters in containerID'],
    [{ ...addEnv, CNI_IFNAME: 'eth0:1' }, '{}', 4, 'interface name contains / or : or whitespace characters'],
    [{ ...addEnv, CNI_COMMAND: 'add' }, '{"name":"n","cniVersion":"1.0.0"}', 4, 'unknown CNI_COMMAND: add'],
    [addEnv, '{"name":', 6, 'error unmarshall network config'],
    [addEnv, '{"cniVersion":"1.0.0"}', 7, 'missing network name'],
    [addEnv, '{"cniVersion":"2.0.0","name":"n"}', 1, 'incompatible CNI versions'],
    [addEnv, '{"cniVersion":"1.0.0","name":"n"}', 7, 'must be called as chained plugin'],
    [{ ...addEnv, CNI_COMMAND: 'CHECK' }, '{"cniVersion":"1.0.0","name":"n"}', 7, 'Required prevResult missing'],
    [{ ...addEnv, CNI_COMMAND: 'CHECK' }, '{"cniVersion":"0.3.1","name":"n"}', 1, 'config version does not allow CHECK'],
  ])('rejects %j with stdin %s: code %i', async (env, stdin, code, msg) => {
    const r = await exec(env as Record<string, string>, stdin);
    expect(r.code).toBe(1);
    expect(r.json?.code).toBe(code);
    expect(String(r.json?.msg)).toContain(msg);
    expect(Object.keys(r.json ?? {}).sort()).toEqual(['cniVersion', 'code', 'details', 'msg']);
    expect(r.stdout.trim().startsWith('{') && r.stdout.trim().endsWith('}')).toBe(true);
  });

  it('acts as an operator CLI without CNI_COMMAND', async () => {
    const help = await exec({}, '');
    expect(help.code).toBe(0);
    expect(help.stderr).toContain('CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0');
    const r = await sh([PLUGIN, '--help'], { env: { PATH: process.env.PATH ?? '' } });
    expect(r.stdout).toContain('Operator commands');
    const v = await sh([PLUGIN, '--version'], { env: { PATH: process.env.PATH ?? '' } });
    expect(v.stdout).toMatch(/^portmap \d+\.\d+\.\d+/);
  });
});

// Debian's bridge plugin (1.1.1) supports up to 1.0.0; 1.1.0 (GC, STATUS) is exercised by direct calls elsewhere.
describe.each(['0.3.1', '0.4.0', '1.0.0'])('a conflist without port mappings through libcni (cniVersion %s)', (cniVersion) => {
  let bed: TestBed;
  beforeAll(async () => {
    bed = await TestBed.create({ cniVersion });
  });
  afterAll(() => bed?.destroy());

  it('ADD passes the result through, CHECK and DEL succeed, no firewall state is created', async () => {
    const pod = await bed.addPod([]);
    expect(pod.result.cniVersion).toBe(cniVersion);
    expect(pod.ip4).toMatch(/^10\.244\.0\./);
    if (cniVersion !== '0.3.1') expect((await bed.checkPod(pod)).code).toBe(0);
    expect((await inNs(bed.node, ['nft', 'list', 'tables'])).stdout).not.toContain('cni_portmap');
    expect((await bed.delPod(pod)).code).toBe(0);
  });

  it('prints the bridge result unchanged', async () => {
    // portmap's output is the final result libcni returns; bridge alone (portmap with no mappings) must match it.
    const pod = await bed.addPod([]);
    const ips = pod.result.ips as Array<Record<string, unknown>>;
    expect(ips).toHaveLength(2);
    if (cniVersion.startsWith('0.')) expect(ips[0]).toHaveProperty('version', '4');
    else expect(ips[0]).not.toHaveProperty('version');
    await bed.delPod(pod);
  });
});
