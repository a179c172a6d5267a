/**
 * Follows netfilter changes in this network namespace through `nft monitor` (one long-running nft
 * process blocked on a netlink socket: no cost while nothing changes), for `portmap watch`. It sees
 * nftables and iptables-nft changes alike (iptables-nft rules live in nf_tables tables `ip nat`,
 * `ip6 nat`, `ip filter`); the legacy x_tables flavour emits nothing here (watch polls it).
 *
 * Only removals can damage our state; element additions and removals are what every CNI call does, and
 * kube-proxy's own tables churn constantly, so both are filtered out before anything is checked.
 */
import { type ChildProcess, spawn } from 'node:child_process';

/** Whether one `nft monitor` line may mean our rules are gone (pure). */
export function isDamageEvent(line: string): boolean {
  const l = line.trim();
  if (!l.startsWith('delete ') && !l.startsWith('flush ')) return false;
  const w = l.split(/\s+/);
  // delete element / delete rule / delete chain / delete table / delete set|map / flush ...
  if (w[1] === 'element') return false;
  const family = w[2];
  const table = w[3];
  if (w[1] === 'table' || w[1] === 'ruleset') return true;
  if (table === 'cni_portmap') return true;
  // iptables-nft: our chains and the base chains our jumps sit in; not kube-proxy's churn.
  if ((family === 'ip' || family === 'ip6') && (table === 'nat' || table === 'filter')) {
    const chain = w[4] ?? '';
    return !chain.startsWith('KUBE-');
  }
  return false;
}

export interface Follower {
  /** Resolves with nft's exit code (or null when killed) once it ends. */
  done: Promise<number | null>;
  stop(): void;
}

/**
 * Runs `nft monitor` and calls `onDamage` (debounced by `debounceMs`, so one flush is one call) for
 * every batch of events that may have removed our rules. nft prints nothing until something changes.
 */
export function followRuleset(onDamage: () => void, opts: { debounceMs?: number; nft?: string } = {}): Follower {
  const debounceMs = opts.debounceMs ?? 50;
  const child: ChildProcess = spawn(opts.nft ?? 'nft', ['monitor'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let timer: NodeJS.Timeout | undefined;
  let rest = '';
  const fire = () => {
    timer = undefined;
    onDamage();
  };
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    const text = rest + chunk;
    const lines = text.split('\n');
    rest = lines.pop() ?? '';
    if (lines.some(isDamageEvent)) {
      if (timer) clearTimeout(timer);
      timer = setTimeout(fire, debounceMs);
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const done = new Promise<number | null>((resolve, reject) => {
    child.once('error', (err) => reject(new Error(`cannot run nft monitor: ${err.message}`)));
    child.once('exit', (code) => {
      if (timer) clearTimeout(timer);
      if (code !== 0 && code !== null && stderr) reject(new Error(`nft monitor exited with ${code}: ${stderr.trim()}`));
      else resolve(code);
    });
  });
  return {
    done,
    stop: () => {
      if (timer) clearTimeout(timer);
      child.kill('SIGTERM');
    },
  };
}
