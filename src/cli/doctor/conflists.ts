/** Conflists that chain portmap without the portMappings capability. */
import type { Facts } from '../facts.js';
import type { Finding } from './finding.js';

const CAPABILITY = '"capabilities": {"portMappings": true}';

interface PluginConf {
  type?: unknown;
  capabilities?: { portMappings?: unknown };
}

/** Conflists that chain portmap without the portMappings capability: the runtime never sends mappings. */
export function checkConflists(facts: Facts): Finding[] {
  const out: Finding[] = [];
  for (const f of facts.confFiles ?? []) {
    if (f.text === undefined) continue;
    let doc: { plugins?: PluginConf[]; type?: unknown; capabilities?: PluginConf['capabilities'] };
    try {
      doc = JSON.parse(f.text) as typeof doc;
    } catch (err) {
      if (/portmap/.test(f.text)) {
        out.push({
          id: 'conflist-invalid',
          severity: 'warning',
          message: `${f.file} mentions portmap but is not valid JSON (${(err as Error).message}): ` +
            'the runtime ignores it.',
          fix: `Repair the JSON (python3 -m json.tool ${f.file} shows where it breaks).`,
        });
      }
      continue;
    }
    const plugins: PluginConf[] = Array.isArray(doc?.plugins) ? doc.plugins : [doc];
    plugins.forEach((p, i) => {
      if (p?.type !== 'portmap' || p.capabilities?.portMappings === true) return;
      out.push({
        id: 'conflist-missing-capability',
        severity: 'error',
        message: `${f.file} chains portmap${Array.isArray(doc?.plugins) ? ` (plugins[${i}])` : ''} without ` +
          `${CAPABILITY}: the runtime never passes the pods' hostPorts, so none are forwarded.`,
        fix: `Add ${CAPABILITY} to that plugin entry, then restart the pods that need hostPorts.`,
      });
    });
  }
  return out;
}
