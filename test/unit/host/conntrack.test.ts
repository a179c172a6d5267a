import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CommandError, type RunOptions, type RunResult } from '../../../src/host/exec.js';
import {
  DIRECT_PORTS, MAX_PORT_LINES, type UdpTarget, flushUdpEntries, linesForListing, parseListing,
} from '../../../src/host/conntrack.js';

const LISTING = `udp      17 119 src=192.0.2.5 dst=192.0.2.200 sport=1084 dport=40001 [UNREPLIED] src=10.0.0.2 dst=192.0.2.5 sport=40001 dport=1084 mark=0 use=1
udp      17 29 src=192.0.2.6 dst=192.0.2.200 sport=999 dport=40001 src=192.0.2.200 dst=192.0.2.6 sport=40001 dport=999 [ASSURED] mark=0 zone=3 use=1
udp      17 29 src=192.0.2.6 dst=192.0.2.200 sport=999 dport=50000 src=10.0.0.2 dst=192.0.2.6 sport=50000 dport=999 mark=0 use=1
udp      17 29 src=192.0.2.7 dst=192.0.2.200 sport=53 dport=53 src=192.0.2.200 dst=192.0.2.7 sport=53 dport=53 mark=0 use=1
conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.
`;

const V6 = `udp      17 29 src=2001:db8::5 dst=2001:db8::1 sport=5 dport=40002 src=fd00::2 dst=2001:db8::5 sport=40002 dport=5 mark=0 use=1
`;

interface Call { command: string; args: readonly string[]; input?: string }

function recorder(outputs: Record<string, string> = {}, fail?: (c: Call) => Error | undefined) {
  const calls: Call[] = [];
  const runner = async (command: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> => {
    // The delete lines are in the file -R names (read now: it is removed afterwards).
    const input = args[0] === '-R' ? readFileSync(args[1]!, 'utf8') : opts?.input;
    const call: Call = { command, args: args[0] === '-R' ? ['-R', '<file>'] : args, ...(input !== undefined ? { input } : {}) };
    calls.push(call);
    const err = fail?.(call);
    if (err) throw err;
    return { stdout: outputs[args.join(' ')] ?? '', stderr: '', code: 0 };
  };
  return { calls, runner };
}

describe('parseListing', () => {
  it('reads the original and the reply tuple, and skips the summary', () => {
    const entries = parseListing(LISTING + V6);
    expect(entries).toHaveLength(5);
    expect(entries[0]).toEqual({ origSrc: '192.0.2.5', origDst: '192.0.2.200', origSport: 1084, origDport: 40001, replySrc: '10.0.0.2' });
    expect(entries[4]).toMatchObject({ origSrc: '2001:db8::5', origDport: 40002, replySrc: 'fd00::2' });
  });
});

describe('linesForListing', () => {
  const target: UdpTarget = { family: 4, ports: [{ first: 40000, last: 56383 }], pod: '10.0.0.2' };

  it('ADD: one line per port that has entries, nothing for ports outside', () => {
    expect(linesForListing(target, parseListing(LISTING), false)).toEqual([
      '-D -p udp -f ipv4 --orig-port-dst 40001',
      '-D -p udp -f ipv4 --orig-port-dst 50000',
    ]);
  });

  it('DEL: the entries the pod answers in one line, then the ports of the others', () => {
    expect(linesForListing(target, parseListing(LISTING), true)).toEqual([
      '-D -p udp -f ipv4 --reply-src 10.0.0.2',
      '-D -p udp -f ipv4 --orig-port-dst 40001',
    ]);
  });

  it('nothing to delete: no lines', () => {
    expect(linesForListing({ family: 4, ports: [{ first: 1, last: 10 }] }, parseListing(LISTING), true)).toEqual([]);
  });
});

describe('flushUdpEntries', () => {
  it('few ports: one conntrack -R process without a listing', async () => {
    const { calls, runner } = recorder();
    const n = await flushUdpEntries([{ family: 4, ports: [{ first: 53, last: 53 }] }, { family: 6, ports: [{ first: 53, last: 54 }] }], 'ADD', runner);
    expect(n).toBe(1);
    expect(calls).toEqual([{
      command: 'conntrack',
      args: ['-R', '<file>'],
      input: '-D -p udp -f ipv4 --orig-port-dst 53\n-D -p udp -f ipv6 --orig-port-dst 53\n-D -p udp -f ipv6 --orig-port-dst 54\n',
    }]);
  });

  it('16,384 ports in two families: two listings and one delete process', async () => {
    const { calls, runner } = recorder({ '-L -p udp -f ipv4': LISTING, '-L -p udp -f ipv6': V6 });
    const ports = [{ first: 40000, last: 56383 }];
    const n = await flushUdpEntries([{ family: 4, ports, pod: '10.0.0.2' }, { family: 6, ports, pod: 'fd00::2' }], 'DEL', runner);
    expect(n).toBe(3);
    expect(calls.map((c) => c.args.join(' '))).toEqual(['-L -p udp -f ipv4', '-L -p udp -f ipv6', '-R <file>']);
    expect(calls[2]!.input).toBe('-D -p udp -f ipv4 --reply-src 10.0.0.2\n-D -p udp -f ipv4 --orig-port-dst 40001\n-D -p udp -f ipv6 --reply-src fd00::2\n');
  });

  it('many ports without entries: the listing only', async () => {
    const { calls, runner } = recorder();
    expect(await flushUdpEntries([{ family: 4, ports: [{ first: 1, last: DIRECT_PORTS + 1 }] }], 'ADD', runner)).toBe(1);
    expect(calls).toHaveLength(1);
  });

  it('no UDP ports: no process', async () => {
    const { calls, runner } = recorder();
    expect(await flushUdpEntries([{ family: 4, ports: [] }], 'DEL', runner)).toBe(0);
    expect(calls).toEqual([]);
  });

  it('conntrack without -R: one process per line', async () => {
    const { calls, runner } = recorder({}, (c) =>
      c.args[0] === '-R' ? new CommandError('conntrack -R failed', 'conntrack', c.args, 2, "conntrack: invalid option -- 'R'", 'failed') : undefined);
    await flushUdpEntries([{ family: 4, ports: [{ first: 7, last: 8 }] }], 'ADD', runner);
    expect(calls.map((c) => c.args.join(' '))).toEqual(['-R <file>', '-D -p udp -f ipv4 --orig-port-dst 7', '-D -p udp -f ipv4 --orig-port-dst 8']);
  });

  it('other failures are reported', async () => {
    const { runner } = recorder({}, (c) => new CommandError('boom', 'conntrack', c.args, 1, 'Operation failed: permission denied', 'failed'));
    await expect(flushUdpEntries([{ family: 4, ports: [{ first: 1, last: 100 }] }], 'ADD', runner)).rejects.toThrow('boom');
  });
});

describe('linesForListing with thousands of ports that have entries', () => {
  it('coalesces per address pair beyond MAX_PORT_LINES, skipping addresses of another family', () => {
    const lines = Array.from({ length: 3000 }, (_, i) =>
      `udp 17 60 src=192.0.2.${1 + (i % 200)} dst=192.0.2.200 sport=${1000 + i} dport=${20000 + i} src=${i % 2 ? '10.0.0.9' : '192.0.2.200'} dst=192.0.2.1 sport=${20000 + i} dport=1 mark=0 use=1`);
    lines.push('udp 17 60 src=192.0.2.1 dst=bogus sport=1 dport=20001 src=10.0.0.9 dst=x sport=2 dport=1 mark=0 use=1');
    const out = linesForListing({ family: 4, ports: [{ first: 20000, last: 36383 }] }, parseListing(lines.join('\n')), false);
    expect(out).toEqual([
      '-D -p udp -f ipv4 --orig-dst 192.0.2.200 --reply-src 10.0.0.9',
      '-D -p udp -f ipv4 --orig-dst 192.0.2.200 --reply-src 192.0.2.200',
    ]);
  });

  it('stays per port up to MAX_PORT_LINES', () => {
    const lines = Array.from({ length: MAX_PORT_LINES }, (_, i) => `udp 17 60 src=192.0.2.1 dst=192.0.2.200 sport=1 dport=${100 + i} src=192.0.2.200 dst=192.0.2.1 sport=${100 + i} dport=1`);
    expect(linesForListing({ family: 4, ports: [{ first: 1, last: 1000 }] }, parseListing(lines.join('\n')), false)).toHaveLength(MAX_PORT_LINES);
  });
});
