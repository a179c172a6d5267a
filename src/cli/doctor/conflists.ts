/**
 * The CNI configuration directory as a runtime reads it, and what is wrong in it (pure).
 *
 * Runtimes consider the `.conf`, `.conflist` and `.json` files of the directory in byte order and load
 * the first one (containerd's default max_conf_num is 1; CRI-O uses its default network, the first): a
 * `.conflist` as a list of plugins, a `.conf`/`.json` as ONE plugin. A file that cannot be loaded (not
 * JSON, a `.conf` holding a `plugins` list and no `type`) is skipped by CRI-O with a log line; containerd
 * (go-cni) stops at it and loads nothing. libcni gives each plugin of a list the list's `name` and
 * `cniVersion`, so the plugin's configuration is checked the same way: parseConfig (what every ADD does)
 * and lintConfig (the warnings every call logs).
 */
import { CniError } from '../../cni/errors.js';
import { isObject } from '../../cni/json.js';
import { type BackendName, parseConfig } from '../../portmap/config.js';
import { lintConfig } from '../../portmap/config-lint.js';
import type { ConfFile, Facts } from '../facts.js';
import { shellQuote } from '../format.js';
import { jsonError } from '../json-error.js';
import type { Finding } from './finding.js';

const CAPABILITY = '"capabilities": {"portMappings": true}';

type Json = Record<string, unknown>;

/** One configuration file, read the way a runtime reads it. */
export interface ConfEntry {
  file: string;
  /** `.conflist`: a list of plugins; `.conf`, `.json`: one plugin. */
  kind: 'list' | 'single';
  doc?: Json;
  /** Why a runtime cannot load it; undefined: it loads. */
  broken?: string;
  /** It holds a `plugins` list but is read as one plugin (a `.conf` or `.json`). */
  listInSingle?: boolean;
}

/** The directory as the runtime sees it: every file, and which one it loads. */
export interface RuntimeView {
  entries: ConfEntry[];
  /** Index in entries of the file the runtime loads (the first that loads); undefined: none loads. */
  loaded?: number;
}

/** What libcni's ConfListFromBytes refuses in a list; undefined when it loads. */
function listProblem(doc: Json): string | undefined {
  if (typeof doc.name !== 'string') return doc.name === undefined ? 'it has no "name"' : '"name" is not a string';
  if (doc.cniVersion !== undefined && typeof doc.cniVersion !== 'string') return '"cniVersion" is not a string';
  if (!Array.isArray(doc.plugins)) return 'it has no "plugins" list';
  if (doc.plugins.length === 0) return 'its "plugins" list is empty';
  const untyped = doc.plugins.findIndex((p) => !isObject(p) || typeof p.type !== 'string' || p.type === '');
  if (untyped >= 0) return `plugins[${untyped}] has no "type"`;
  return undefined;
}

function readEntry(f: ConfFile & { text: string }): ConfEntry {
  const kind = f.file.endsWith('.conflist') ? 'list' : 'single';
  let doc: unknown;
  try {
    doc = JSON.parse(f.text);
  } catch (err) {
    const at = jsonError(f.text);
    const where = at ? `line ${at.line}, column ${at.column}: ${at.message}` : (err as Error).message;
    return { file: f.file, kind, broken: `it is not valid JSON (${where})` };
  }
  if (!isObject(doc)) return { file: f.file, kind, broken: 'it is not a JSON object' };
  if (kind === 'list') {
    const broken = listProblem(doc);
    return { file: f.file, kind, doc, ...(broken ? { broken } : {}) };
  }
  if (kind === 'single' && (typeof doc.type !== 'string' || doc.type === '')) {
    const listInSingle = Array.isArray(doc.plugins);
    return { file: f.file, kind, doc, broken: listInSingle ? 'it holds a "plugins" list but is read as one plugin, which has no "type"' : 'it has no "type"', listInSingle };
  }
  return { file: f.file, kind, doc };
}

/** The configuration files as the runtime reads them (in the order they were listed: the runtime's). */
export function runtimeView(files: readonly ConfFile[] | undefined): RuntimeView {
  const entries = (files ?? []).filter((f): f is ConfFile & { text: string } => f.text !== undefined).map(readEntry);
  const loaded = entries.findIndex((e) => e.broken === undefined);
  return { entries, ...(loaded >= 0 ? { loaded } : {}) };
}

/** The plugin entries of a loadable file, with their index in its list (none for a single plugin). */
export function pluginsOf(e: ConfEntry): Array<{ plugin: Json; index?: number }> {
  if (!e.doc || e.broken) return [];
  if (e.kind === 'single') return [{ plugin: e.doc }];
  return (e.doc.plugins as unknown[]).flatMap((p, index) => (isObject(p) ? [{ plugin: p, index }] : []));
}

/** The configuration portmap receives for one entry (without the runtime's additions), as libcni builds it. */
function pluginConfig(e: ConfEntry, plugin: Json): Json {
  if (e.kind === 'single') return plugin;
  return { ...plugin, name: e.doc!.name, cniVersion: e.doc!.cniVersion };
}

/** The key a configuration error is about (best effort: parseConfig's messages name it). */
export function keyOfError(err: CniError): string | undefined {
  const m = /^invalid value for ([^:\s]+)/.exec(err.message);
  if (m) return m[1]!.split(/[.[]/)[0];
  if (/^unrecognized backend/.test(err.message)) return 'backend';
  if (/externalSetMarkChain and markMasqBit/.test(err.message)) return 'externalSetMarkChain';
  const foreign = /specific options \[([^\]]+)\]/.exec(err.message);
  if (foreign) return foreign[1]!.split(' ')[0];
  if (err.code === 1) return 'cniVersion';
  return undefined;
}

/** "FILE: plugins[1] (portmap)" */
const entryLabel = (file: string, index: number | undefined): string =>
  `${file}: ${index !== undefined ? `plugins[${index}] ` : ''}(portmap)`;

/** The backend the node would choose for an entry without one (nft installed: nftables). */
const nodeBackend = (facts: Pick<Facts, 'tools'>): BackendName | undefined =>
  facts.tools.nft ? 'nftables' : facts.tools.iptables ? 'iptables' : undefined;

/** The portmap entries of one loadable file: capability, invalid values, lint warnings. */
function checkPortmapEntries(e: ConfEntry, facts: Pick<Facts, 'tools'>, ignored: string): Finding[] {
  const out: Finding[] = [];
  for (const { plugin, index } of pluginsOf(e)) {
    if (plugin.type !== 'portmap') continue;
    const label = entryLabel(e.file, index);
    const where = { file: e.file, ...(index !== undefined ? { plugin: index } : {}) };
    const caps = plugin.capabilities;
    if (!(isObject(caps) && caps.portMappings === true)) {
      out.push({
        id: 'conflist-missing-capability',
        severity: ignored ? 'warning' : 'error',
        message: `${label} has no ${CAPABILITY}: the runtime never passes the pods' hostPorts, so none are forwarded${ignored}.`,
        fix: `Add ${CAPABILITY} to that plugin entry, then recreate the pods that need hostPorts.`,
        where: { ...where, key: 'capabilities' },
      });
    }
    try {
      parseConfig(pluginConfig(e, plugin));
    } catch (err) {
      if (!(err instanceof CniError)) throw err;
      const key = keyOfError(err);
      out.push({
        id: 'conflist-invalid-value',
        severity: ignored ? 'warning' : 'error',
        message: `${label}: ${err.message}${err.details ? `: ${err.details}` : ''}. Every ADD on this network fails ` +
          `(CNI error ${err.code}), so its pods get no network and do not start${ignored}.`,
        fix: `Correct ${key ? `"${key}"` : 'that value'} in that plugin entry (the README's Configuration table lists ` +
          'the keys and their values), then recreate the pods that failed.',
        where: { ...where, ...(key ? { key } : {}) },
      });
    }
    const backend = plugin.backend === 'nftables' || plugin.backend === 'iptables' ? plugin.backend : nodeBackend(facts);
    for (const w of lintConfig(plugin, backend)) {
      if (w.key === 'capabilities') continue; // conflist-missing-capability above
      out.push({
        id: 'conflist-config-warning',
        severity: 'warning',
        message: /[?.]$/.test(w.msg) && !ignored ? `${label}: ${w.msg}` : `${label}: ${w.msg}${ignored}.`,
        fix: w.suggestion
          ? `Write "${w.suggestion}" instead of "${w.key}" in that plugin entry, then recreate the pods that need its effect.`
          : `Remove "${w.key}" from that plugin entry (or correct it: the README's Configuration table lists the keys).`,
        where: { ...where, key: w.key, ...(w.suggestion ? { suggestion: w.suggestion } : {}) },
      });
    }
  }
  return out;
}

/** Files a runtime cannot load: not JSON, not an object, a list without plugins, a `.conf` holding a list. */
function checkBroken(e: ConfEntry, i: number, view: RuntimeView): Finding | undefined {
  if (!e.broken) return undefined;
  const before = view.loaded === undefined || i < view.loaded;
  const effect = before
    ? 'containerd (go-cni) stops loading the CNI configuration at this file, so no pod gets a network; ' +
      `CRI-O skips it${view.loaded !== undefined ? ` and loads ${view.entries[view.loaded]!.file}` : ''}`
    : `the runtime does not read it now (it loads ${view.entries[view.loaded!]!.file}, which sorts first)`;
  if (e.listInSingle) {
    const target = e.file.replace(/\.(conf|json)$/, '.conflist');
    const taken = view.entries.some((x) => x.file === target);
    return {
      id: 'conf-holds-plugin-list',
      severity: 'error',
      message: `${e.file} holds a "plugins" list, but a runtime reads a ${e.file.endsWith('.json') ? '.json' : '.conf'} ` +
        `file as one plugin, which has no "type": ${effect}. Any portmap in that list never runs.`,
      fix: taken
        ? `Merge it into ${target} (which exists already), then remove it; restart the runtime and recreate the pods that need hostPorts.`
        : 'Rename it to .conflist, then restart the runtime and recreate the pods that need hostPorts.',
      ...(taken ? {} : { commands: [`mv ${shellQuote(e.file)} ${shellQuote(target)}`] }),
      where: { file: e.file },
    };
  }
  return {
    id: 'conflist-invalid',
    severity: before ? 'error' : 'warning',
    message: `${e.file} cannot be loaded: ${e.broken}; ${effect}.`,
    fix: 'Repair the file (or move it out of the directory), then restart the runtime.',
    where: { file: e.file },
  };
}

/** Every configuration file: what a runtime cannot load, and each portmap entry's mistakes. */
export function checkConflists(facts: Facts): Finding[] {
  const view = runtimeView(facts.confFiles);
  const out: Finding[] = [];
  view.entries.forEach((e, i) => {
    const broken = checkBroken(e, i, view);
    if (broken) out.push(broken);
    const ignored = view.loaded !== undefined && i !== view.loaded
      ? ` (the runtime does not load this file: it loads ${view.entries[view.loaded]!.file})`
      : '';
    out.push(...checkPortmapEntries(e, facts, ignored));
  });
  return out;
}

/** The note on which file the runtime loads, and which it ignores (undefined without files). */
export function loadedNote(facts: Pick<Facts, 'confFiles' | 'cniConfDir'>): { loads?: string; ignored: string[] } | undefined {
  const view = runtimeView(facts.confFiles);
  if (view.entries.length === 0) return undefined;
  const loads = view.loaded !== undefined ? view.entries[view.loaded]!.file : undefined;
  return { ...(loads ? { loads } : {}), ignored: view.entries.map((e) => e.file).filter((f) => f !== loads) };
}
