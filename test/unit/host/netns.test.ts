import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootId, netnsAlive, netnsAt, ownNetns, scopeName } from '../../../src/host/netns.js';

describe('network namespace identity', () => {
  it('identifies our own namespace by the nsfs device and inode of any path to it', () => {
    const own = ownNetns();
    expect(netnsAt(`/proc/${process.pid}/ns/net`)).toEqual(own);
    expect(scopeName(own)).toBe(`netns-${own.dev}-${own.ino}`);
    expect(bootId()).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a namespace is alive only in the same boot, at a path that still opens the same namespace', () => {
    const own = ownNetns();
    const path = `/proc/${process.pid}/ns/net`;
    expect(netnsAlive(path, own, 'b1', 'b1')).toEqual({ alive: true });
    expect(netnsAlive(path, own, 'b0', 'b1')).toMatchObject({ alive: false, reason: expect.stringMatching(/earlier boot/) });
    expect(netnsAlive(path, { dev: own.dev, ino: own.ino + 1 }, 'b1', 'b1')).toMatchObject({ alive: false, reason: expect.stringMatching(/another/) });
    expect(netnsAlive('/proc/999999999/ns/net', own, 'b1', 'b1')).toMatchObject({ alive: false, reason: expect.stringMatching(/gone/) });
    // The file `ip netns del` would leave if it could not unmount: another device and inode.
    const dir = mkdtempSync(join(tmpdir(), 'ns-'));
    writeFileSync(join(dir, 'p1'), '');
    expect(netnsAlive(join(dir, 'p1'), own, 'b1', 'b1').alive).toBe(false);
    rmSync(dir, { recursive: true });
  });
});
