#!/usr/bin/env node
// ADD and DEL time of the iptables backend with 0 and 1,000 existing hostPort attachments, beside the
// reference plugin (/usr/lib/cni/portmap) when installed. Everything runs in fresh network namespaces
// (never the root one). The 1,000 attachments are installed with one iptables-restore in the reference
// layout (what 1,000 ADDs of either plugin leave behind). Median of RUNS runs per cell.
//
// Usage (root, after `npm run build`): node bench/iptables-scale.mjs [--runs 15] [--existing 1000] [--legacy]
//   --legacy: also measure the legacy flavour (kube-proxy's KUBE-SERVICES pre-created in iptables-legacy).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const PLUGIN = join(root, 'dist', 'portmap');
const REFERENCE = '/usr/lib/cni/portmap';
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('--runs', 15);
const EXISTING = opt('--existing', 1000);
const NETWORK = 'benchnet';

if (!existsSync(PLUGIN)) {
  console.error(`${PLUGIN} missing: run npm run build first`);
  process.exit(1);
}

// Node start-up on these machines is inflated by NODE_EXTRA_CA_CERTS (not set on real nodes).
const env = { ...process.env };
delete env.NODE_EXTRA_CA_CERTS;

const sh = (cmd, argv, input) => execFileSync(cmd, argv, { input, stdio: ['pipe', 'pipe', 'pipe'], env }).toString();
const inNs = (ns, argv, input) => sh('ip', ['netns', 'exec', ns, ...argv], input);

const chain = (name, id) => `CNI-DN-${createHash('sha512').update(name + id).digest('hex')}`.slice(0, 28);

/** A restore document holding `n` attachments in the reference layout (IPv4 and IPv6 documents). */
function preload(n) {
  const doc = (fam) => {
    const out = ['*nat'];
    out.push(':CNI-HOSTPORT-DNAT - [0:0]', ':CNI-HOSTPORT-SETMARK - [0:0]', ':CNI-HOSTPORT-MASQ - [0:0]');
    out.push('-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT', '-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT');
    out.push('-I POSTROUTING 1 -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ');
    out.push('-A CNI-HOSTPORT-SETMARK -m comment --comment "CNI portfwd masquerade mark" -j MARK --set-xmark 0x2000/0x2000');
    out.push('-A CNI-HOSTPORT-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE');
    for (let i = 0; i < n; i++) {
      const id = `existing-${i}`;
      const c = chain(NETWORK, id);
      const port = 20000 + i;
      const pod = fam === 4 ? `10.244.${Math.floor(i / 250) + 1}.${(i % 250) + 2}` : `fd00:244::${(i + 2).toString(16)}`;
      const subnet = fam === 4 ? '10.244.0.0/16' : 'fd00:244::/64';
      out.push(`:${c} - [0:0]`);
      out.push(`-A ${c} -p tcp --dport ${port} -s ${subnet} -j CNI-HOSTPORT-SETMARK`);
      if (fam === 4) out.push(`-A ${c} -p tcp --dport ${port} -s 127.0.0.1 -j CNI-HOSTPORT-SETMARK`);
      out.push(`-A ${c} -p tcp --dport ${port} -j DNAT --to-destination ${fam === 4 ? pod : `[${pod}]`}:80`);
      out.push(`-A CNI-HOSTPORT-DNAT -m comment --comment "dnat name: \\"${NETWORK}\\" id: \\"${id}\\"" -m multiport -p tcp --destination-ports ${port} -j ${c}`);
    }
    out.push('COMMIT', '');
    return out.join('\n');
  };
  return { 4: doc(4), 6: doc(6) };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Runs inside a node namespace as a small server: each line on stdin runs one ADD then DEL of a fresh
 * attachment and answers with their times (ms) as a JSON line. The outer process alternates the namespaces
 * with 0 and N existing attachments, so that load on the machine hits both columns alike.
 */
function inner() {
  const at = args.indexOf('--inner');
  const [plugin, podNs] = [args[at + 1], args[at + 2]];
  let i = 0;
  let buf = '';
  process.stdin.on('data', (chunk) => {
    buf += chunk;
    while (buf.includes('\n')) {
      buf = buf.slice(buf.indexOf('\n') + 1);
      const id = `bench-${randomBytes(6).toString('hex')}`;
      const conf = {
        cniVersion: '1.0.0',
        name: NETWORK,
        type: 'portmap',
        backend: 'iptables',
        runtimeConfig: { portMappings: [{ hostPort: 30000 + (i++ % 1000), containerPort: 80, protocol: 'tcp' }] },
        prevResult: {
          cniVersion: '1.0.0',
          interfaces: [{ name: 'eth0', sandbox: `/var/run/netns/${podNs}` }],
          ips: [{ address: '10.244.0.9/16', interface: 0 }, { address: 'fd00:244::9/64', interface: 0 }],
        },
      };
      if (plugin === REFERENCE) delete conf.backend;
      const callEnv = { ...env, CNI_CONTAINERID: id, CNI_IFNAME: 'eth0', CNI_NETNS: `/var/run/netns/${podNs}`, CNI_PATH: '/usr/lib/cni' };
      const time = (command) => {
        const t0 = process.hrtime.bigint();
        const r = spawnSync(plugin, [], { input: JSON.stringify(conf), env: { ...callEnv, CNI_COMMAND: command } });
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r.status !== 0) throw new Error(`${command} failed: ${r.stdout}${r.stderr}`);
        return ms;
      };
      const add = time('ADD');
      const del = time('DEL');
      process.stdout.write(`${JSON.stringify({ add, del })}\n`);
    }
  });
}

/** A node namespace with a bridge for the pods' subnet and `existing` attachments, plus its inner runner. */
function setupNode(plugin, existing, flavour) {
  const tag = randomBytes(3).toString('hex');
  const node = `bench${tag}-node`;
  const pod = `bench${tag}-pod`;
  sh('ip', ['netns', 'add', node]);
  sh('ip', ['netns', 'add', pod]);
  inNs(node, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(node, ['ip', 'link', 'add', 'cni0', 'type', 'bridge']);
  inNs(node, ['ip', 'addr', 'add', '10.244.0.1/16', 'dev', 'cni0']);
  inNs(node, ['ip', 'addr', 'add', 'fd00:244::1/64', 'dev', 'cni0', 'nodad']);
  inNs(node, ['ip', 'link', 'set', 'cni0', 'up']);
  const save = flavour === 'legacy' ? 'legacy' : 'nft';
  if (flavour === 'legacy') inNs(node, ['iptables-legacy', '-t', 'nat', '-N', 'KUBE-SERVICES']);
  if (existing > 0) {
    const docs = preload(existing);
    inNs(node, [`iptables-${save}-restore`, '--noflush'], docs[4]);
    inNs(node, [`ip6tables-${save}-restore`, '--noflush'], docs[6]);
  }
  const child = spawn('ip', ['netns', 'exec', node, process.execPath, fileURLToPath(import.meta.url), '--inner', plugin, pod], { stdio: ['pipe', 'pipe', 'inherit'], env });
  const waiters = [];
  let buf = '';
  child.stdout.on('data', (c) => {
    buf += c;
    while (buf.includes('\n')) {
      const l = buf.slice(0, buf.indexOf('\n'));
      buf = buf.slice(buf.indexOf('\n') + 1);
      waiters.shift()?.ok(JSON.parse(l));
    }
  });
  child.on('exit', (code) => {
    for (const w of waiters.splice(0)) w.fail(new Error(`bench runner in ${node} exited with ${code}`));
  });
  const once = () =>
    new Promise((ok, fail) => {
      waiters.push({ ok, fail });
      child.stdin.write('go\n');
    });
  const close = () => {
    child.stdin.end();
    const left = inNs(node, [`iptables-${save}-save`, '-t', 'nat']).split('\n').filter((l) => l.startsWith('-A CNI-HOSTPORT-DNAT')).length;
    sh('ip', ['netns', 'del', node]);
    sh('ip', ['netns', 'del', pod]);
    if (left !== existing) throw new Error(`expected ${existing} entry rules after the runs, found ${left}`);
  };
  return { once, close };
}

async function measure(label, plugin, flavour) {
  const zero = setupNode(plugin, 0, flavour);
  const full = setupNode(plugin, EXISTING, flavour);
  const z = { add: [], del: [] };
  const f = { add: [], del: [] };
  try {
    for (let i = 0; i < RUNS + 1; i++) {
      const a = await zero.once();
      const b = await full.once();
      if (i === 0) continue; // warm-up
      z.add.push(a.add);
      z.del.push(a.del);
      f.add.push(b.add);
      f.del.push(b.del);
    }
  } finally {
    zero.close();
    full.close();
  }
  return { label, zero: { add: median(z.add), del: median(z.del) }, full: { add: median(f.add), del: median(f.del) } };
}

if (args.includes('--inner')) {
  inner();
} else {
  const rows = [];
  const cases = [['portmap-ts iptables-nft', PLUGIN, 'nft']];
  if (args.includes('--legacy')) cases.push(['portmap-ts iptables-legacy', PLUGIN, 'legacy']);
  if (existsSync(REFERENCE)) cases.push(['reference v1.1.1 (iptables on PATH)', REFERENCE, 'nft']);
  for (const [label, plugin, flavour] of cases) rows.push(await measure(label, plugin, flavour));
  const pct = (a, b) => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(0)}%`;
  const f = (x) => x.toFixed(1).padStart(7);
  console.log(`median of ${RUNS} runs, ms, 0 and ${EXISTING} alternating (Node without NODE_EXTRA_CA_CERTS; 1 tcp mapping, dual-stack pod)`);
  console.log(`${'plugin'.padEnd(38)} ${'ADD@0'.padStart(7)} ${`ADD@${EXISTING}`.padStart(9)} ${'growth'.padStart(7)}  ${'DEL@0'.padStart(7)} ${`DEL@${EXISTING}`.padStart(9)} ${'growth'.padStart(7)}`);
  for (const r of rows) {
    console.log(`${r.label.padEnd(38)} ${f(r.zero.add)} ${f(r.full.add).padStart(9)} ${pct(r.zero.add, r.full.add).padStart(7)}  ${f(r.zero.del)} ${f(r.full.del).padStart(9)} ${pct(r.zero.del, r.full.del).padStart(7)}`);
  }
}
