/**
 * The log an operator reads (issue #17), after real calls through libcni: `logFile` in the conflist,
 * one line per call with the path each backend took, the takeover of a host port in pod names, nothing
 * that reads as an error on success, the error line of a failed call, and what reaches the runtime's
 * stderr with and without a log file.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Pod, TestBed } from './harness.js';

type Line = Record<string, unknown> & { level: string; msg?: string; verb?: string };

const dir = mkdtempSync(join(tmpdir(), 'portmap-logs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The log's lines from `from` on (JSON lines). */
function linesOf(file: string, from = 0): Line[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(from).map((l) => JSON.parse(l) as Line);
}
const calls = (lines: Line[]) => lines.filter((l) => l.verb !== undefined);
const count = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

describe('the log (nftables)', () => {
  let bed: TestBed;
  const logFile = join(dir, 'nft', 'var-log', 'portmap.log');
  const conf = { logFile, logLevel: 'debug', logFormat: 'json' };

  beforeAll(async () => {
    bed = await TestBed.create({ portmap: conf });
  });
  afterAll(() => bed?.destroy());

  const podArgs = (name: string, id: string) => TestBed.podArgs('default', name, id);
  const add = async (name: string, mappings: Pod['mappings']) => {
    const id = `${bed.prefix}-${name}`;
    return bed.addPod(mappings, { id, args: podArgs(name, id) });
  };

  it('one line per call: the attachment, its pod, mappings, backend, path and outcome; slow first, fast next; takeovers in pod names', async () => {
    const web0 = await add('web-0', [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }, { hostPort: 5353, containerPort: 53, protocol: 'udp' }]);
    expect(statSync(logFile).mode & 0o777).toBe(0o640 & ~process.umask());
    const first = calls(linesOf(logFile));
    expect(first).toHaveLength(1);
    expect(first[0]).toEqual({
      time: expect.any(String), level: 'info', pid: expect.any(Number),
      verb: 'ADD', network: bed.networkName, containerID: web0.id, ifname: 'eth0', pod: 'default/web-0',
      mappings: '8080->80/tcp,5353->53/udp', backend: 'nftables', path: 'slow', ms: expect.any(Number), outcome: 'ok',
    });
    // The fast path was not taken because the table did not exist yet: said so, at debug.
    expect(linesOf(logFile).filter((l) => l.level === 'debug').map((l) => l.msg)).toContain(
      'nftables ADD: fast path not taken: table inet cni_portmap does not exist yet (the first ADD on this node, or the ruleset was flushed): creating it',
    );

    let mark = count(logFile);
    const web1 = await add('web-1', [{ hostPort: 9090, containerPort: 90, protocol: 'tcp' }, { hostPort: 9000, containerPort: 9000, protocol: 'tcp', hostIP: '192.0.2.10' }]);
    expect(linesOf(logFile, mark)).toEqual([expect.objectContaining({ verb: 'ADD', pod: 'default/web-1', path: 'fast', mappings: '9090->90/tcp,[192.0.2.10]:9000->9000/tcp', outcome: 'ok' })]);

    mark = count(logFile);
    const web2 = await add('web-2', [{ hostPort: 8080, containerPort: 8000, protocol: 'tcp' }]);
    const takeover = linesOf(logFile, mark);
    const warnings = takeover.filter((l) => l.level === 'warn').map((l) => l.msg);
    expect(warnings).toEqual([
      `hostPort 8080/tcp (all addresses) was held by default/web-0 (${bed.networkName}/${web0.id}/eth0); now default/web-2 (${bed.networkName}/${web2.id}/eth0)`,
    ]);
    expect(calls(takeover)).toEqual([expect.objectContaining({ verb: 'ADD', pod: 'default/web-2', path: 'slow', outcome: 'ok' })]);

    // With a log file, the runtime's stderr (libcni passes a successful plugin's on) gets warnings only.
    for (const p of [web0, web1]) expect(p.addStderr ?? '').not.toMatch(/portmap\[|"pid"/);
    const stderr = (web2.addStderr ?? '').split('\n').filter((l) => l.includes('"pid"')).map((l) => (JSON.parse(l) as Line).msg);
    expect(stderr).toEqual(warnings);

    mark = count(logFile);
    for (const p of [web0, web1, web2]) expect((await bed.delPod(p)).code).toBe(0);
    expect(calls(linesOf(logFile, mark)).map((l) => [l.verb, l.pod, l.path, l.outcome])).toEqual([
      ['DEL', 'default/web-0', 'slow', 'ok'], // its witness went with the takeover
      ['DEL', 'default/web-1', 'fast', 'ok'],
      ['DEL', 'default/web-2', 'fast', 'ok'],
    ]);

    // Six calls, six call lines; nothing of a successful call reads as an error, or names the maps.
    const all = linesOf(logFile);
    expect(calls(all)).toHaveLength(6);
    expect(all.filter((l) => l.level === 'error')).toEqual([]);
    const text = readFileSync(logFile, 'utf8');
    expect(text).not.toMatch(/Error/);
    expect(text).not.toMatch(/hostports[46]_|hostipports[46]_/);
  });

  it('a failed call: one error line with its code, msg and details, as printed on stdout', async () => {
    const mark = count(logFile);
    const res = await bed.plugin(
      { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'bad-config', CNI_NETNS: '/var/run/netns/none', CNI_IFNAME: 'eth0', CNI_ARGS: podArgs('web-9', 'bad-config') },
      bed.portmapConfig({ ...conf, logMaxSize: 1000 }),
    );
    expect(res.code).toBe(1);
    expect(res.json).toMatchObject({ code: 7, msg: 'invalid value for logMaxSize: 1000' });
    const lines = linesOf(logFile, mark);
    expect(lines).toEqual([expect.objectContaining({
      level: 'error', verb: 'ADD', containerID: 'bad-config', pod: 'default/web-9', outcome: 'error',
      code: 7, msg: 'invalid value for logMaxSize: 1000', details: res.json!.details,
    })]);
  });

  it('text lines when logFormat is text; without a log file, a successful call writes its one line to the runtime\'s stderr', async () => {
    const textFile = join(dir, 'nft', 'text.log');
    bed.writeConflist({ logFile: textFile });
    const id = `${bed.prefix}-text`;
    const pod = await bed.addPod([{ hostPort: 7070, containerPort: 70 }], { id, args: podArgs('text-0', id) });
    expect(readFileSync(textFile, 'utf8')).toMatch(new RegExp(
      `^\\S+Z portmap\\[\\d+\\] info: ADD network=${bed.networkName} containerID=${id} ifname=eth0 pod=default/text-0 mappings=7070->70/tcp backend=nftables path=fast ms=\\d+ outcome=ok\\n$`,
    ));
    bed.writeConflist({});
    expect((await bed.delPod(pod)).code).toBe(0);
    const again = await bed.addPod([{ hostPort: 7071, containerPort: 71 }], { id: `${id}-2` });
    const stderr = (again.addStderr ?? '').split('\n').filter((l) => l.includes('portmap['));
    expect(stderr).toEqual([expect.stringMatching(/ info: ADD network=.* path=fast ms=\d+ outcome=ok$/)]);
    bed.writeConflist(conf);
  });
});

describe('the log (iptables)', () => {
  let bed: TestBed;
  const logFile = join(dir, 'ipt', 'portmap.log');

  beforeAll(async () => {
    bed = await TestBed.create({ portmap: { backend: 'iptables', logFile, logFormat: 'json' } });
  });
  afterAll(() => bed?.destroy());

  it('slow on the first ADD (no chains yet), fast after; DEL fast with its plan', async () => {
    const a = await bed.addPod([{ hostPort: 8080, containerPort: 80 }]);
    const b = await bed.addPod([{ hostPort: 8081, containerPort: 80 }]);
    expect((await bed.delPod(b)).code).toBe(0);
    expect((await bed.delPod(a)).code).toBe(0);
    expect(calls(linesOf(logFile)).map((l) => [l.verb, l.containerID, l.backend, l.path, l.outcome])).toEqual([
      ['ADD', a.id, 'iptables', 'slow', 'ok'],
      ['ADD', b.id, 'iptables', 'fast', 'ok'],
      ['DEL', b.id, 'iptables', 'fast', 'ok'],
      ['DEL', a.id, 'iptables', 'fast', 'ok'],
    ]);
    expect(linesOf(logFile).filter((l) => l.level !== 'info')).toEqual([]);
  });
});
