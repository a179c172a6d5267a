/**
 * The call's log line (plugin/call-log.ts) through the real verbs with fake backends: one line per call
 * with what happened, the failure's CNI error, the takeover warning in pod names, and calls refused
 * before a verb.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Backend } from '../../../src/backends/backend.js';
import { CniError } from '../../../src/cni/errors.js';
import { runCni } from '../../../src/cni/skel.js';
import { resetLog } from '../../../src/host/log.js';
import type { PluginDeps } from '../../../src/plugin/deps.js';
import { createPlugin } from '../../../src/plugin/plugin.js';
import { RecordStore } from '../../../src/plugin/records.js';
import { FakeBackend } from '../../fakes/backend.js';
import { PREV_RESULT, TCP_8080, UDP_8053, call, planOf } from '../../fakes/calls.js';
import { type CapturedLog, captureLog } from '../../fakes/log.js';

const RECORDS = mkdtempSync(join(tmpdir(), 'call-log-records-'));
afterAll(() => rmSync(RECORDS, { recursive: true, force: true }));

function deps(backend: FakeBackend): PluginDeps {
  return {
    backendFor: async () => backend as Backend,
    withLock: async (_what, fn) => fn(),
    routeDevice: async () => 'cni0',
    readRouteLocalnet: async () => true,
    enableRouteLocalnet: async () => undefined,
    flushUdpConntrack: async () => undefined,
    testpoint: async () => undefined,
    records: () => new RecordStore(RECORDS),
  };
}

const POD_ARGS = 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=c1';
const withPod = (c: ReturnType<typeof call>, args = POD_ARGS) => ({ ...c, args: { ...c.args, args } });

let captured: CapturedLog;
beforeEach(() => {
  captured = captureLog('info');
});
afterEach(() => captured.stop());

describe('the call line', () => {
  it('ADD: one info line with the attachment, its pod, the mappings, backend, path, duration and outcome', async () => {
    const backend = new FakeBackend('nftables');
    backend.added = { path: 'slow', takeovers: [] };
    await createPlugin(deps(backend)).add(withPod(call('ADD', {}, [TCP_8080, UDP_8053, { hostPort: 9000, containerPort: 9000, hostIP: '192.0.2.10' }])));
    const lines = captured.lines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      level: 'info',
      pid: process.pid,
      verb: 'ADD',
      network: 'net',
      containerID: 'c1',
      ifname: 'eth0',
      pod: 'default/web-1',
      mappings: '8080->80/tcp,8053->53/udp,[192.0.2.10]:9000->9000/tcp',
      backend: 'nftables',
      path: 'slow',
      ms: expect.any(Number),
      outcome: 'ok',
    });
  });

  it('DEL and CHECK: their own lines; the path where the verb has one', async () => {
    const backend = new FakeBackend('iptables');
    const plugin = createPlugin(deps(backend));
    await plugin.del(call('DEL', {}, [TCP_8080]));
    backend.proves = true;
    await plugin.del(call('DEL', {}, [TCP_8080]));
    await plugin.check(call('CHECK', {}, [TCP_8080]));
    expect(captured.lines().map((l) => [l.verb, l.backend, l.path, l.outcome])).toEqual([
      ['DEL', 'iptables', 'slow', 'ok'],
      ['DEL', 'iptables', 'fast', 'ok'],
      ['CHECK', 'iptables', undefined, 'ok'],
    ]);
  });

  it('a failed call: one error line with the CNI error it prints (code, msg, details)', async () => {
    const backend = new FakeBackend('nftables');
    backend.failing.set('add', new CniError(11, 'timed out waiting for the portmap lock', 'held by pid 4242'));
    await expect(createPlugin(deps(backend)).add(call('ADD'))).rejects.toThrow('timed out');
    const [line, ...rest] = captured.lines();
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ level: 'error', verb: 'ADD', backend: 'nftables', outcome: 'error', code: 11, msg: 'timed out waiting for the portmap lock', details: 'held by pid 4242' });
    expect(line).not.toHaveProperty('path');
  });

  it("a bad configuration is logged where its valid logging keys say (the environment's overrides unset)", async () => {
    captured.stop();
    const dir = mkdtempSync(join(tmpdir(), 'call-log-'));
    try {
      resetLog(() => undefined);
      const logFile = join(dir, 'sub', 'portmap.log');
      const bad = call('ADD', { logFile, logFormat: 'json', logLevel: 'loud' });
      const err = await createPlugin(deps(new FakeBackend('nftables'))).add(bad).catch((e: unknown) => e as CniError);
      expect(err?.code).toBe(7);
      const line = JSON.parse(readFileSync(logFile, 'utf8')) as Record<string, unknown>;
      expect(line).toMatchObject({ level: 'error', verb: 'ADD', network: 'net', outcome: 'error', code: 7, msg: 'invalid value for logLevel: "loud"', details: 'logLevel must be one of error, warn, info, debug' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      captured = captureLog('info');
    }
  });

  it('an unexpected failure (code 999) keeps its stack at debug', async () => {
    captured.stop();
    captured = captureLog('debug');
    const backend = new FakeBackend('nftables');
    backend.failing.set('check', new TypeError('cannot read properties of undefined'));
    await expect(createPlugin(deps(backend)).check(call('CHECK'))).rejects.toThrow(TypeError);
    const lines = captured.lines();
    expect(lines.map((l) => l.level)).toEqual(['debug', 'error']);
    expect(lines[0]!.msg).toMatch(/^CHECK failed: TypeError: cannot read properties of undefined\n\s+at /);
    expect(lines[1]).toMatchObject({ code: 999, msg: 'cannot read properties of undefined' });
  });

  it('a takeover: one warning naming the pod that held the port (from its record) and the one that has it now', async () => {
    const previous = planOf([TCP_8080], {}, 'c0');
    new RecordStore(RECORDS).write(previous, 'nftables', '/var/run/netns/p0', { pod: { namespace: 'default', name: 'web-0' } });
    const backend = new FakeBackend('nftables');
    const from = { id: previous.owner.id, name: 'net/c0/eth0' };
    backend.added = {
      path: 'slow',
      takeovers: [4, 6].map((family) => ({ family: family as 4 | 6, protocol: 'tcp', first: 8080, last: 8080, from })),
    };
    await createPlugin(deps(backend)).add(withPod(call('ADD')));
    const lines = captured.lines();
    expect(lines.map((l) => l.level)).toEqual(['warn', 'info']);
    expect(lines[0]!.msg).toBe('hostPort 8080/tcp (all addresses) was held by default/web-0 (net/c0/eth0); now default/web-1 (net/c1/eth0)');
    expect(JSON.stringify(lines)).not.toMatch(/hostports\d_|Error/);
  });
});

describe('calls refused before a verb', () => {
  const io = (env: Record<string, string>, stdin: string) => {
    const out: string[] = [];
    return { out, io: { env, stdin: async () => stdin, stdout: (t: string) => void out.push(t) } };
  };
  const config = JSON.stringify({ cniVersion: '1.0.0', name: 'net', type: 'portmap', prevResult: PREV_RESULT });

  it('a bad environment or undecodable configuration: the error line with its code, and the same error on stdout', async () => {
    const plugin = async () => createPlugin(deps(new FakeBackend('nftables')));
    const missing = io({ CNI_COMMAND: 'ADD', CNI_NETNS: '/var/run/netns/p', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }, config);
    expect(await runCni(missing.io, plugin)).toBe(1);
    const junk = io({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c9', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }, '{not json');
    expect(await runCni(junk.io, plugin)).toBe(1);
    const lines = captured.lines();
    expect(lines.map((l) => [l.verb, l.containerID, l.code, l.outcome])).toEqual([['ADD', undefined, 4, 'error'], ['DEL', 'c9', 6, 'error']]);
    expect(lines[0]!.msg).toBe(JSON.parse(missing.out[0]!).msg);
    expect(lines[1]!.msg).toMatch(/^error unmarshall network config/);
  });

  it('a call that reaches its verb is logged once, by the verb', async () => {
    const plugin = async () => createPlugin(deps(new FakeBackend('nftables')));
    const ok = io({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'c1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin' }, config);
    expect(await runCni(ok.io, plugin)).toBe(0);
    expect(captured.lines().map((l) => [l.verb, l.outcome])).toEqual([['DEL', 'ok']]);
  });
});
