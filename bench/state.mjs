// Pre-populated node state: N existing hostPort mappings (one per attachment, as N pods with one hostPort
// each would leave them), written in one transaction instead of N plugin calls.
//
// - ours: the nftables elements come from our own renderer and config/prevResult parsing (src/, bundled
//   here with esbuild), so they are exactly what N ADDs would have written.
// - reference: the iptables-restore text reproduces the chain layout of the Go plugin's iptables backend
//   (CNI-HOSTPORT-DNAT multiport jumps to per-container CNI-DN-<hash> chains, SETMARK/MASQ chains).
//
// bench.mjs checks both generators against the real plugins: one real ADD and the generated state for
// the same attachment must list identically (nft list table / iptables-save), and one request goes
// through a generated mapping.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export const NETWORK = 'benchnet';
export const POD_SUBNET = { network: '10.244.0.0', prefix: 16, gateway: '10.244.0.1' };
/** Generated mapping i: hostPort GEN_PORT_BASE + i -> 10.244.<1 + i/250>.<2 + i%250>:80 */
export const GEN_PORT_BASE = 20000;
export const genPodIp = (i) => `10.244.${1 + Math.floor(i / 250)}.${2 + (i % 250)}`;
export const genContainerId = (i) => `bench-existing-${String(i).padStart(5, '0')}`;

/** The prevResult the bridge plugin would hand to portmap for a pod with this IPv4 address. */
export function prevResult(podIp, netnsPath = '/var/run/netns/bench-pod') {
  return {
    cniVersion: '1.0.0',
    interfaces: [
      { name: 'cni0', mac: '0a:58:0a:f4:00:01' },
      { name: 'veth0', mac: '0a:58:0a:f4:00:02' },
      { name: 'eth0', mac: '0a:58:0a:f4:00:03', sandbox: netnsPath },
    ],
    ips: [{ address: `${podIp}/${POD_SUBNET.prefix}`, gateway: POD_SUBNET.gateway, interface: 2 }],
    routes: [{ dst: '0.0.0.0/0' }],
    dns: {},
  };
}

/** The plugin's stdin for ADD/DEL of one attachment (cniVersion 1.0.0, as containerd sends it). */
export function pluginConfig({ backend, mappings, podIp, netnsPath }) {
  return {
    cniVersion: '1.0.0',
    name: NETWORK,
    type: 'portmap',
    ...(backend ? { backend } : {}),
    capabilities: { portMappings: true },
    runtimeConfig: { portMappings: mappings },
    prevResult: prevResult(podIp, netnsPath),
  };
}

export const genMapping = (i) => ({ hostPort: GEN_PORT_BASE + i, containerPort: 80, protocol: 'tcp' });

// ---- ours ----------------------------------------------------------------------------------------

let rendererPromise;
/** Our renderer and parsers, bundled from src/ into a temporary module. */
function renderer() {
  rendererPromise ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portmap-bench-render-'));
    try {
      const file = join(dir, 'render.mjs');
      await build({
        stdin: {
          contents: [
            "export { skeletonFor, ownerElements, podnetElements, addElements } from './src/backends/nftables/render.ts';",
            "export { document, FAMILY, TABLE } from './src/backends/nftables/json.ts';",
            "export { buildPlan, ownerFor } from './src/portmap/plan.ts';",
            "export { parseConfig } from './src/portmap/config.ts';",
            "export { parsePrevResult, containerAddresses } from './src/cni/result.ts';",
          ].join('\n'),
          resolveDir: ROOT,
          loader: 'ts',
          sourcefile: 'bench-render.ts',
        },
        outfile: file,
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: 'node20',
        logLevel: 'warning',
      });
      return await import(pathToFileURL(file).href);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return rendererPromise;
}

/**
 * One nft JSON document that replaces our table with the state N attachments leave behind: the table
 * skeleton, the pod subnet, and each attachment's elements (entries = [{containerId, podIp, mapping}]).
 */
export async function oursState(entries) {
  const r = await renderer();
  const cmds = [
    { add: { table: { family: r.FAMILY, name: r.TABLE } } },
    { delete: { table: { family: r.FAMILY, name: r.TABLE } } },
    ...r.skeletonFor({ afterServices: false, serviceCIDRs: [] }),
  ];
  const podnets = new Map();
  for (const e of entries) {
    const config = r.parseConfig(pluginConfig({ backend: 'nftables', mappings: [e.mapping], podIp: e.podIp }));
    const prev = r.parsePrevResult(config.prevResult, config.cniVersion);
    const plan = r.buildPlan(config, r.ownerFor(config, e.containerId, 'eth0'), r.containerAddresses(prev.result, 'eth0'));
    for (const p of r.podnetElements(plan)) podnets.set(JSON.stringify(p.key), p);
    cmds.push(...r.addElements(r.ownerElements(plan)));
  }
  cmds.push(...r.addElements([...podnets.values()]));
  return r.document(cmds);
}

// ---- reference (Go plugin, iptables backend) -----------------------------------------------------

/** utils.MustFormatChainNameWithPrefix(name, containerID, "DN-"): ("CNI-DN-" + hex(sha512(name+id)))[:28] */
export const refChainName = (network, containerId) =>
  `CNI-DN-${createHash('sha512').update(network + containerId).digest('hex')}`.slice(0, 28);

const MARK = '0x2000/0x2000';

/**
 * `iptables-restore` input (whole nat table) for the state N attachments leave behind, in the form
 * iptables-save prints it. Entries as for oursState; every pod is in 10.244.0.0/16.
 */
export function referenceState(entries) {
  const subnet = `${POD_SUBNET.network}/${POD_SUBNET.prefix}`;
  const decl = [':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]',
    ':CNI-HOSTPORT-DNAT - [0:0]', ':CNI-HOSTPORT-MASQ - [0:0]', ':CNI-HOSTPORT-SETMARK - [0:0]'];
  const rules = [
    '-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT',
    '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ',
  ];
  const jumps = [];
  const chains = [];
  for (const e of entries) {
    const chain = refChainName(NETWORK, e.containerId);
    const { hostPort, containerPort, protocol } = e.mapping;
    decl.push(`:${chain} - [0:0]`);
    jumps.push(`-A CNI-HOSTPORT-DNAT -p ${protocol} -m comment --comment "dnat name: \\"${NETWORK}\\" id: \\"${e.containerId}\\"" -m multiport --dports ${hostPort} -j ${chain}`);
    chains.push(
      `-A ${chain} -s ${subnet} -p ${protocol} -m ${protocol} --dport ${hostPort} -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain} -s 127.0.0.1/32 -p ${protocol} -m ${protocol} --dport ${hostPort} -j CNI-HOSTPORT-SETMARK`,
      `-A ${chain} -p ${protocol} -m ${protocol} --dport ${hostPort} -j DNAT --to-destination ${e.podIp}:${containerPort}`,
    );
  }
  return ['*nat', ...decl, ...rules, ...jumps,
    `-A CNI-HOSTPORT-MASQ -m mark --mark ${MARK} -j MASQUERADE`,
    `-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark ${MARK}`,
    ...chains, 'COMMIT', ''].join('\n');
}

/** iptables-save output reduced to what identifies the state: chain names (a set) and each chain's rules in order. */
export function normalizeIptablesSave(text) {
  const chains = new Set();
  const rules = new Map();
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) chains.add(line.slice(1).split(' ')[0]);
    else if (line.startsWith('-A ')) {
      const chain = line.split(' ')[1];
      if (!rules.has(chain)) rules.set(chain, []);
      rules.get(chain).push(line);
    }
  }
  return JSON.stringify({ chains: [...chains].sort(), rules: [...rules.entries()].sort(([a], [b]) => a.localeCompare(b)) });
}

/** Writes text to a private temporary file; returns its path and a cleanup function. */
export function tempFile(name, text) {
  const dir = mkdtempSync(join(tmpdir(), 'portmap-bench-'));
  const file = join(dir, name);
  writeFileSync(file, text, { mode: 0o600 });
  return { file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
