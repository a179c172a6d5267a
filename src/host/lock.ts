import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * A lock around every read-modify-write of our firewall state.
 *
 * It is an abstract unix socket: binding the name is the lock. The kernel frees it the moment the
 * holder exits, however it dies (SIGKILL included), so a crashed holder never blocks the next call.
 * Abstract sockets belong to a network namespace, exactly like the ruleset they protect. Waiters connect
 * to the holder, learn who it is (pid, verb, container), and retry when that connection closes.
 */
export const LOCK_NAME = '\0cni-portmap.lock';

export interface LockOwnerInfo {
  pid: number;
  what: string;
  since: string;
}

export interface Lock {
  release(): Promise<void>;
}

/** The lock was not free within the timeout; `holder` is who held it last, when it said. */
export class LockTimeoutError extends Error {
  constructor(
    readonly timeoutMs: number,
    readonly holder: LockOwnerInfo | undefined,
    readonly lockName: string,
  ) {
    const who = holder ? `pid ${holder.pid} (${holder.what}, since ${holder.since})` : 'another process';
    super(`timed out after ${timeoutMs} ms waiting for the portmap lock held by ${who}`);
    this.name = 'LockTimeoutError';
  }

  /** How to find the holder. */
  get hint(): string {
    return `the lock is the abstract unix socket "@${this.lockName.slice(1)}" (see: ss -xlp | grep cni-portmap); it is released when that process exits`;
  }
}

/** Who holds the lock, as told to waiters; the time is formatted only when one asks (Date formatting costs on every call). */
function tryBind(name: string, info: () => LockOwnerInfo): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const sockets = new Set<Socket>();
    const server = createServer((sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => sockets.delete(sock));
      sock.write(`${JSON.stringify(info())}\n`);
    });
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') resolve(undefined);
      else reject(err);
    });
    server.listen({ path: name }, () => {
      const close = server.close.bind(server);
      // Closing the lock also drops the waiters' connections: that is their signal to retry.
      (server as Server & { closeAll: () => Promise<void> }).closeAll = () =>
        new Promise<void>((done) => {
          close(() => done());
          for (const s of sockets) s.destroy();
        });
      resolve(server);
    });
  });
}

/** Connects to the holder; resolves with its info (if it said anything) once the connection closes. */
function waitForHolder(name: string, maxMs: number): Promise<LockOwnerInfo | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const sock = createConnection({ path: name });
    const timer = setTimeout(() => sock.destroy(), maxMs);
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      text += d;
    });
    const done = () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text.split('\n')[0] ?? '') as LockOwnerInfo);
      } catch {
        resolve(undefined);
      }
    };
    sock.on('close', done);
    sock.on('error', () => undefined);
  });
}

export async function acquireLock(what: string, timeoutMs = 60_000, name = LOCK_NAME): Promise<Lock> {
  const started = Date.now();
  const info = (): LockOwnerInfo => ({ pid: process.pid, what, since: new Date(started).toISOString() });
  const deadline = Date.now() + timeoutMs;
  let lastHolder: LockOwnerInfo | undefined;
  for (;;) {
    const server = await tryBind(name, info);
    if (server) {
      return { release: () => (server as Server & { closeAll: () => Promise<void> }).closeAll() };
    }
    const left = deadline - Date.now();
    if (left <= 0) throw new LockTimeoutError(timeoutMs, lastHolder, name);
    lastHolder = (await waitForHolder(name, Math.min(left, 5_000))) ?? lastHolder;
  }
}

/** Runs fn while holding the lock. */
export async function withLock<T>(what: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const lock = await acquireLock(what, timeoutMs);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
