/** `npm run demo`'s script end to end (as root), plus its answers when not root or when tools are missing. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from './harness.js';

const DEMO = join(ROOT, 'demo', 'demo.mjs');

describe('npm run demo', () => {
  it('runs the whole story, every request lands where it should, and nothing is left behind', () => {
    const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', timeout: 120_000 });
    const out = r.stdout;
    expect(r.status, out + r.stderr).toBe(0);
    const prefix = /Network namespaces (pmdemo[0-9a-f]+)-\*/.exec(out)![1]!;
    expect(out).toMatch(/ok +client -> 192\.0\.2\.1:8080 +-> answered by web-pod \(it saw the client as 192\.0\.2\.2\)/);
    expect(out).toMatch(/ok +node -> 127\.0\.0\.1:8080 +-> answered by web-pod/);
    expect(out).toMatch(/ok +hairpin: pod "other" -> 192\.0\.2\.1:8080 +-> answered by web-pod/);
    expect(out).toMatch(/tcp +\* +8080 +-> +10\.244\.0\.\d+:80 +demo-net +pmdemo\w+-web +eth0 +\d+ +nftables/);
    expect(out).toMatch(/ok +node -> Service 10\.96\.0\.10:3306 +\(captured!\) +-> answered by db-pod/);
    expect(out).toMatch(/ERROR \[service-port-captured\] hostPort tcp\/3306/);
    expect(out).toMatch(/ok +node -> Service 10\.96\.0\.10:3306 +-> answered by mysql-service/);
    expect(out).toMatch(/no problems found/);
    expect(out).not.toMatch(/FAIL/);
    expect(out).toMatch(/Demo finished: every request went where it should\./);
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    expect(left).not.toContain(prefix);
  });

  it('explains what to do when not run as root', () => {
    const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', uid: 65534, gid: 65534, timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/must run as root.*sudo npm run demo/);
  });

  it('prints the apt-get line for missing tools', () => {
    const bin = mkdtempSync(join(tmpdir(), 'pm-demo-path-'));
    try {
      symlinkSync(process.execPath, join(bin, 'node'));
      const r = spawnSync(process.execPath, [DEMO], { encoding: 'utf8', env: { ...process.env, PATH: bin, CNI_BIN_DIR: join(bin, 'none') }, timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stdout).toMatch(/nft is not installed/);
      expect(r.stdout).toContain('sudo apt-get install -y iproute2 nftables iptables conntrack containernetworking-plugins');
    } finally {
      rmSync(bin, { recursive: true, force: true });
    }
  });
});
