/** `portmap install --chain`, the pure part: which file the runtime loads, the edit, the diff. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { chainPortmap, confFiles, insertIntoPlugins, loadedConfFile, pluginsArraySpan, unifiedDiff } from '../../../src/cli/conflist-chain.js';

const FLANNEL = `{
  "name": "cbr0",
  "cniVersion": "0.3.1",
  "plugins": [
    {
      "type": "flannel",
      "delegate": {
        "hairpinMode": true,
        "isDefaultGateway": true
      }
    },
    {
      "type": "bandwidth",
      "capabilities": {
        "bandwidth": true
      }
    }
  ],
  "x-extra": {"plugins": ["not this one"], "n": 1.50}
}
`;

describe('which file the runtime loads', () => {
  it('is the first .conf/.conflist/.json in byte order, ignoring other files', () => {
    const names = ['99-loopback.conf', '10-flannel.conflist', 'README', '10-calico.conflist.bak', '05-Zed.json', '05-alpha.json'];
    expect(confFiles(names)).toEqual(['05-Zed.json', '05-alpha.json', '10-flannel.conflist', '99-loopback.conf']);
    expect(loadedConfFile(names)).toBe('05-Zed.json');
    expect(loadedConfFile(['a.conf', 'a.conflist'])).toBe('a.conf');
    expect(loadedConfFile(['notes.txt'])).toBeUndefined();
  });
});

describe('chaining portmap', () => {
  it('appends portmap to a conflist and changes no other byte', () => {
    const r = chainPortmap('10-flannel.conflist', FLANNEL);
    expect(r.kind).toBe('changed');
    if (r.kind !== 'changed') return;
    const doc = JSON.parse(r.text) as { plugins: Array<Record<string, unknown>> };
    expect(doc.plugins.map((p) => p.type)).toEqual(['flannel', 'bandwidth', 'portmap']);
    expect(doc.plugins[2]).toEqual({ type: 'portmap', capabilities: { portMappings: true } });
    // Everything before the insertion point and after it is the original text.
    const cut = FLANNEL.indexOf('    }\n  ],') + '    }'.length;
    expect(r.text.startsWith(FLANNEL.slice(0, cut))).toBe(true);
    expect(r.text.endsWith(FLANNEL.slice(cut))).toBe(true);
    expect(r.text).toContain('"n": 1.50');
    expect(r.text).toContain('\n    {\n      "type": "portmap",\n      "capabilities": {\n        "portMappings": true\n      }\n    }\n  ],');
    expect(r.file).toBe('10-flannel.conflist');
    expect(r.removeFile).toBeUndefined();
  });

  it('adds the Service-safe settings with --kubernetes', () => {
    const r = chainPortmap('10-flannel.conflist', FLANNEL, { kubernetes: { serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/112'] } });
    expect(r.kind).toBe('changed');
    if (r.kind !== 'changed') return;
    const doc = JSON.parse(r.text) as { plugins: Array<Record<string, unknown>> };
    expect(doc.plugins[2]).toEqual({ type: 'portmap', capabilities: { portMappings: true }, afterServices: true, serviceCIDRs: ['10.96.0.0/12', 'fd00:10:96::/112'] });
  });

  it('is idempotent: a list that has portmap is left alone, with a warning when it lacks the capability', () => {
    const once = chainPortmap('x.conflist', FLANNEL);
    if (once.kind !== 'changed') throw new Error('expected a change');
    const twice = chainPortmap('x.conflist', once.text);
    expect(twice).toEqual({ kind: 'unchanged', reason: 'x.conflist already chains portmap', warnings: [] });
    const bare = chainPortmap('x.conflist', '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap"}]}');
    expect(bare.kind).toBe('unchanged');
    expect(bare.kind === 'unchanged' && bare.warnings[0]).toMatch(/portMappings/);
    const k = chainPortmap('x.conflist', once.text, { kubernetes: { serviceCIDRs: [] } });
    expect(k.kind === 'unchanged' && k.warnings[0]).toMatch(/afterServices/);
  });

  it('keeps a one-line list on one line', () => {
    const text = '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","bridge":"cni0"}]}\n';
    const r = chainPortmap('a.conflist', text);
    expect(r.kind === 'changed' && r.text).toBe('{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge","bridge":"cni0"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}\n');
  });

  it('keeps one-line elements of a multi-line list on one line, in tabs when the file uses tabs', () => {
    const text = '{\n\t"name": "n",\n\t"plugins": [\n\t\t{ "type": "bridge" }\n\t]\n}\n';
    const r = chainPortmap('a.conflist', text);
    expect(r.kind === 'changed' && r.text).toBe('{\n\t"name": "n",\n\t"plugins": [\n\t\t{ "type": "bridge" },\n\t\t{"type": "portmap", "capabilities": {"portMappings": true}}\n\t]\n}\n');
  });

  it('turns a single-plugin .conf into a .conflist of the same base name, keeping the plugin\'s text', () => {
    const text = '{\n  "cniVersion": "0.4.0",\n  "name": "mynet",\n  "type": "bridge",\n  "ipam": { "type": "host-local", "subnet": "10.22.0.0/16" }\n}\n';
    const r = chainPortmap('10-mynet.conf', text);
    expect(r.kind).toBe('changed');
    if (r.kind !== 'changed') return;
    expect(r.file).toBe('10-mynet.conflist');
    expect(r.removeFile).toBe('10-mynet.conf');
    const doc = JSON.parse(r.text) as Record<string, unknown>;
    expect(doc).toEqual({
      cniVersion: '0.4.0',
      name: 'mynet',
      plugins: [JSON.parse(text), { type: 'portmap', capabilities: { portMappings: true } }],
    });
    // The new name sorts where the old one did among other files.
    expect(loadedConfFile(['10-mynet.conflist', '20-other.conf'])).toBe('10-mynet.conflist');
  });

  it('refuses a .conf holding a plugins list (runtimes skip it silently), invalid JSON and lone portmap', () => {
    const list = chainPortmap('10-net.conf', '{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"}]}');
    expect(list.kind).toBe('error');
    expect(list.kind === 'error' && list.reason).toMatch(/silent no-op.*rename it to \.conflist/);
    expect(chainPortmap('a.conflist', '{"plugins": [').kind).toBe('error');
    expect(chainPortmap('a.conflist', '[]').kind).toBe('error');
    expect(chainPortmap('a.conflist', '{"name":"n","plugins":[]}').kind).toBe('error');
    expect(chainPortmap('a.conf', '{"name":"n","type":"portmap"}').kind).toBe('error');
  });

  it('finds the top-level plugins list only (not a nested key or a string that looks like one)', () => {
    const text = '{"a": {"plugins": [1]}, "s": "\\"plugins\\": [", "plugins": [ {"type": "x"} ], "z": ["plugins"]}';
    const span = pluginsArraySpan(text);
    expect(span).toBeDefined();
    expect(text.slice(span![0], span![1] + 1)).toBe('[ {"type": "x"} ]');
    expect(JSON.parse(insertIntoPlugins(text, { type: 'portmap' })!)).toEqual({ ...JSON.parse(text), plugins: [{ type: 'x' }, { type: 'portmap' }] });
  });
});

describe('the --dry-run diff', () => {
  it('is empty for equal texts and a valid unified diff otherwise (patch applies it)', () => {
    expect(unifiedDiff('a', 'b', 'x\n', 'x\n')).toBe('');
    const r = chainPortmap('10-flannel.conflist', FLANNEL);
    if (r.kind !== 'changed') throw new Error('expected a change');
    const diff = unifiedDiff('a/10-flannel.conflist', 'b/10-flannel.conflist', FLANNEL, r.text);
    expect(diff).toMatch(/^--- a\/10-flannel.conflist\n\+\+\+ b\/10-flannel.conflist\n@@ -14,6 \+14,12 @@\n/);
    expect(diff).toContain('       }\n+    },\n+    {\n+      "type": "portmap",');
    const dir = mkdtempSync(join(tmpdir(), 'portmap-diff-'));
    try {
      for (const [old, next] of [[FLANNEL, r.text], ['a\nb\nc\n', 'c\n'], ['', 'new\n'], ['1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n', '0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n']] as const) {
        writeFileSync(join(dir, 'f'), old);
        writeFileSync(join(dir, 'p'), unifiedDiff('f', 'f', old, next));
        const res = spawnSync('patch', ['-s', join(dir, 'f'), join(dir, 'p')], { encoding: 'utf8' });
        if (res.error) return; // no patch(1) here: the header check above still holds
        expect(res.status, res.stderr + res.stdout).toBe(0);
        expect(spawnSync('cat', [join(dir, 'f')], { encoding: 'utf8' }).stdout).toBe(next);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
