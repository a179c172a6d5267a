/**
 * The portmap executable. With CNI_COMMAND set it is a CNI plugin; without, an operator CLI.
 * Only the VERSION path is loaded eagerly: everything else is imported when a call needs it, so a
 * runtime's VERSION probe costs little more than starting Node.
 */
import { writeSync } from 'node:fs';
import { readStdin } from './cni/stdin.js';
import { versionInfo } from './cni/version-command.js';

/** fd 1 directly: building process.stdout costs more than a CNI answer needs. */
const print = (text: string): void => {
  const buf = Buffer.from(text);
  for (let off = 0; off < buf.length; ) off += writeSync(1, buf, off);
};

async function main(): Promise<number> {
  // Only while build/build.mjs makes the bundle's code cache: compile what CNI calls run, then stop.
  if (process.env.PORTMAP_TRAIN_CODE_CACHE === '1') {
    await (await import('./startup/warm-up.js')).warmUp();
    return 0;
  }
  const command = process.env.CNI_COMMAND ?? '';
  if (command === 'VERSION') {
    let stdin = '';
    try {
      stdin = readStdin();
    } catch {
      // VERSION answers even without a readable configuration.
    }
    print(`${JSON.stringify(versionInfo(stdin))}\n`);
    return 0;
  }
  if (command !== '') {
    const { runCni } = await import('./cni/skel.js');
    return runCni(
      { env: process.env, stdin: async () => readStdin(), stdout: print },
      async () => (await import('./plugin/plugin.js')).createPlugin(),
    );
  }
  const { runCli } = await import('./cli/cli.js');
  return runCli(process.argv.slice(2));
}

/**
 * A CNI call exits as soon as its answer is written (print is synchronous). The operator CLI writes
 * through process.stdout and process.stderr, which Bun writes to a pipe asynchronously: an exit right
 * after a report larger than the pipe's buffer would cut it. So the CLI ends when the event loop is
 * empty (everything written); the timer only ends a CLI whose loop something still holds.
 */
const cli = process.env.CNI_COMMAND === undefined || process.env.CNI_COMMAND === '';
const end = (code: number): void => {
  if (!cli) process.exit(code);
  process.exitCode = code;
  setTimeout(() => process.exit(code), 10_000).unref();
};
main().then(end, (err: unknown) => {
  process.stderr.write(`portmap: ${(err as Error)?.stack ?? String(err)}\n`);
  end(2);
});
