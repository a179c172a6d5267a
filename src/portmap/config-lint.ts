/**
 * Misconfiguration that does not fail a call but changes what it does (pure): keys we do not know
 * (a typo such as "afterService" turns Service protection off without a word), keys read only because
 * they match a known key in another letter case, options the chosen backend ignores, and a portmap
 * entry without the portMappings capability (the runtime then passes no hostPorts at all).
 *
 * Unknown keys are never rejected (a newer conflist must keep working with this plugin): ADD, DEL and
 * CHECK log these as warnings, and `portmap doctor` reports them for every conflist.
 */
import { type BackendName, TOP_LEVEL_KEYS } from './config.js';
import { isObject } from '../cni/json.js';

export interface ConfigWarning {
  /** The key as written in the configuration. */
  key: string;
  msg: string;
  /** The key that was probably meant, when there is one. */
  suggestion?: string;
}

/** Keys a runtime or libcni adds to a plugin's configuration, and keys of the CNI conventions. */
const RUNTIME_KEYS = ['capabilities', 'args', 'cni.dev/valid-attachments', 'cni.dev/attachments'];

/** Every key a portmap entry may hold. */
export const KNOWN_KEYS: readonly string[] = [...TOP_LEVEL_KEYS, ...RUNTIME_KEYS];

/** Options only one backend reads (the other ignores or rejects them; see checkBackendOptions). */
const IPTABLES_ONLY = ['markMasqBit'];

/** Levenshtein distance, ignoring letter case; stops early once over `max`. */
export function editDistance(a: string, b: string, max = Number.POSITIVE_INFINITY): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (Math.abs(x.length - y.length) > max) return max + 1;
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= y.length; j++) {
      const d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
      cur.push(d);
      best = Math.min(best, d);
    }
    if (best > max) return max + 1;
    prev = cur;
  }
  return prev[y.length]!;
}

/** The known key closest to `key`: a small edit away, or one that starts or ends like it. */
export function closestKey(key: string, known: readonly string[] = KNOWN_KEYS): string | undefined {
  const limit = Math.max(1, Math.min(3, Math.floor(key.length / 4)));
  let best: { key: string; d: number } | undefined;
  for (const k of known) {
    const d = editDistance(key, k, limit);
    if (d <= limit && (!best || d < best.d)) best = { key: k, d };
  }
  if (best) return best.key;
  const lower = key.toLowerCase();
  if (lower.length < 4) return undefined;
  return known.find((k) => {
    const kl = k.toLowerCase();
    return kl.startsWith(lower) || lower.startsWith(kl) || kl.endsWith(lower);
  });
}

/**
 * The warnings for one portmap entry as the plugin receives it (or as a conflist holds it).
 * `backend` is the backend that will run it when known (the configured one, or the one chosen on the node).
 */
export function lintConfig(raw: Record<string, unknown>, backend?: BackendName): ConfigWarning[] {
  const out: ConfigWarning[] = [];
  const exact = new Set(KNOWN_KEYS);
  const byLower = new Map(KNOWN_KEYS.map((k) => [k.toLowerCase(), k]));
  for (const key of Object.keys(raw)) {
    if (exact.has(key)) continue;
    const folded = byLower.get(key.toLowerCase());
    if (folded !== undefined) {
      const msg = folded in raw
        ? `"${key}" is ignored: "${folded}" is also set`
        : `"${key}" is read as "${folded}" (keys match in any letter case); write "${folded}"`;
      out.push({ key, msg, suggestion: folded });
      continue;
    }
    const suggestion = closestKey(key);
    out.push({
      key,
      msg: `unknown key "${key}" is ignored${suggestion ? `: did you mean "${suggestion}"?` : ''}`,
      ...(suggestion ? { suggestion } : {}),
    });
  }
  const chosen = backend ?? (raw.backend === 'nftables' || raw.backend === 'iptables' ? raw.backend : undefined);
  if (chosen === 'nftables') {
    for (const key of IPTABLES_ONLY) {
      if (raw[key] !== undefined && raw[key] !== null) {
        out.push({ key, msg: `"${key}" only shapes iptables rules: the nftables backend ignores it` });
      }
    }
  }
  const caps = raw.capabilities;
  if (caps !== undefined && !(isObject(caps) && caps.portMappings === true)) {
    out.push({
      key: 'capabilities',
      msg: 'the portmap entry lacks "capabilities": {"portMappings": true}: the runtime passes it no hostPorts',
    });
  }
  return out;
}
