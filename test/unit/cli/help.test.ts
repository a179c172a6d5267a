/** --help on every command: usage, each option with its meaning, an example, the exit statuses. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../../src/cli/cli.js';

async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((stdout += String(s)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((stderr += String(s)), true));
  const code = await runCli(argv);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

/** The help's sections: the lines under each "Name:" heading. */
function sections(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let cur: string[] | undefined;
  for (const line of text.split('\n')) {
    const head = /^(Options|Examples|Exit status)[^:]*:$/.exec(line);
    if (head) out.set(head[1]!, (cur = []));
    else if (line.trim() === '') cur = undefined;
    else cur?.push(line);
  }
  return out;
}

const COMMANDS = ['list', 'doctor', 'restore', 'watch', 'install', 'uninstall'];

describe('portmap COMMAND --help', () => {
  afterEach(() => vi.restoreAllMocks());

  it.each(COMMANDS)('%s: --help and -h print usage, every option, examples and exit statuses, exit 0', async (cmd) => {
    for (const flag of ['--help', '-h']) {
      const r = await cli(cmd, flag);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const usage = r.stdout.split('\n').find((l) => l.startsWith(`Usage: portmap ${cmd}`));
      expect(usage, 'a Usage line').toBeDefined();
      const s = sections(r.stdout);
      const options = s.get('Options') ?? [];
      // every option of the usage line has its own line under Options, with words after it
      for (const opt of usage!.match(/--[a-z-]+/g) ?? []) {
        expect(options.some((l) => new RegExp(`^ {2}${opt}\\b.*\\s{2,}\\S`).test(l)), `${cmd}: ${opt}`).toBe(true);
      }
      expect(options.some((l) => l.includes('--help, -h'))).toBe(true);
      expect((s.get('Examples') ?? []).some((l) => l.includes(` ${cmd}`))).toBe(true);
      const exits = (s.get('Exit status') ?? []).filter((l) => /^ {2}\d /.test(l)).map((l) => Number(l.trim().split(' ')[0]));
      expect(exits).toContain(0);
      expect(exits).toContain(2);
      expect(r.stdout.split('\n').filter((l) => l.length > 100), 'lines over 100 characters').toEqual([]);
    }
  });

  it('doctor and list document exit 4 (could not read the node); doctor 1 (findings)', async () => {
    const doctor = sections((await cli('doctor', '--help')).stdout).get('Exit status')!.join('\n');
    expect(doctor).toMatch(/^ {2}1 {2}findings/m);
    expect(doctor).toMatch(/^ {2}4 {2}some of the node's state could not be read/m);
    expect(sections((await cli('list', '--help')).stdout).get('Exit status')!.join('\n')).toMatch(/^ {2}4 {2}the node's rules could not be read/m);
  });

  it('the top level --help lists every command; an unknown option exits 2 with a hint to --help', async () => {
    const top = await cli('--help');
    expect(top.code).toBe(0);
    for (const cmd of COMMANDS) expect(top.stdout).toMatch(new RegExp(`^ {2}${cmd}\\s{2,}\\S`, 'm'));
    expect((await cli('-h')).stdout).toBe(top.stdout);
    expect(top.stdout.split('\n').filter((l) => l.length > 100)).toEqual([]);
    for (const cmd of COMMANDS) {
      const r = await cli(cmd, '--bogus');
      expect(r.code, cmd).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`portmap ${cmd}: unknown option "--bogus"`);
      expect(r.stderr).toContain(`Run "portmap ${cmd} --help"`);
    }
    const unknown = await cli('lsit');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "lsit"[\s\S]*portmap --help/);
  });
});
