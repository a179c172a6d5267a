import { fstatSync, readSync } from 'node:fs';
import { CniError, ErrorCode } from './errors.js';

/** Upper bound on the network configuration we accept; larger input is refused without being parsed. */
export const MAX_STDIN_BYTES = 16 * 1024 * 1024;

/**
 * Reads all of stdin, bounded. Synchronous reads on fd 0: a CNI call's stdin is a pipe or a file,
 * and this avoids building Node's stdin stream (measurable on every call). A terminal (or another
 * character device, such as /dev/null) gives ''.
 */
export function readStdin(fd = 0): string {
  // fstat, not tty.isatty: node:tty loads net and the whole stream stack (~4 ms per call).
  try {
    if (fstatSync(fd).isCharacterDevice()) return '';
  } catch {
    // A closed fd: the read below reports it.
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for (;;) {
    const buf = Buffer.allocUnsafe(65536);
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') continue;
      if (code === 'EOF') break;
      throw new CniError(ErrorCode.IoFailure, `error reading from stdin: ${(err as Error).message}`);
    }
    if (n === 0) break;
    size += n;
    if (size > MAX_STDIN_BYTES) {
      throw new CniError(ErrorCode.IoFailure, 'error reading from stdin: network configuration too large', `the configuration exceeds ${MAX_STDIN_BYTES} bytes`);
    }
    chunks.push(buf.subarray(0, n));
  }
  return Buffer.concat(chunks).toString('utf8');
}
