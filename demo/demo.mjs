#!/usr/bin/env node
// One-command demo (`npm run demo`, as root): in throwaway network namespaces it chains the real
// bridge + host-local plugins and this portmap plugin as a container runtime would, starts small servers
// in pods, and shows hostPort traffic (client, node -> 127.0.0.1, hairpin), `portmap list`, and the
// Service-capture problem with `afterServices`/`serviceCIDRs` off and on. Nothing outside the namespaces
// it creates is touched; everything is removed at the end, also on Ctrl-C.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const PLUGIN = join(ROOT, 'dist', 'portmap');
const CNI_BIN = process.env.CNI_BIN_DIR ?? '/usr/lib/cni';
const ECHO_SERVER = join(ROOT, 'test', 'integration', 'echo-server.mjs');
const ECHO_CLIENT = join(ROOT, 'test', 'integration', 'echo-client.mjs');

const NODE_IP = '192.0.2.1';
const CLIENT_IP = '192.0.2.2';
const CLUSTER_IP = '10.96.0.10';
const SERVICE_CIDR = '10.96.0.0/12';

const say = (s = '') => process.stdout.write(`${s}\n`);
const step = (s) => say(`\n==> ${s}`);
const indent = (text) => text.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');

// ---- prerequisites -------------------------------------------------------------------------------
function onPath(p) {
  return (process.env.PATH ?? '').split(delimiter).some((d) => {
    try {
      accessSync(join(d, p), constants.X_OK);
      return d !== '';
    } catch {
      return false;
    }
  });
}

function preflight() {
  const problems = [];
  const packages = new Set();
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    problems.push('the demo must run as root: it creates network namespaces and nftables rules inside them (try: sudo npm run demo)');
  }
  for (const [tool, pkg] of [['ip', 'iproute2'], ['nft', 'nftables'], ['iptables', 'iptables'], ['conntrack', 'conntrack']]) {
    if (!onPath(tool)) {
      problems.push(`${tool} is not installed`);
      packages.add(pkg);
    }
  }
  for (const p of ['bridge', 'host-local']) {
    if (!existsSync(join(CNI_BIN, p))) {
      problems.push(`the CNI ${p} plugin is missing from ${CNI_BIN} (set CNI_BIN_DIR if it lives elsewhere)`);
      packages.add('containernetworking-plugins');
    }
  }
  if (!existsSync(PLUGIN)) problems.push(`${PLUGIN} is missing: run "npm run build" (npm run demo builds it first)`);
  if (problems.length === 0) return true;
  say('The demo cannot run yet:');
  for (const p of problems) say(`  - ${p}`);
  if (packages.size > 0) say(`\nOn Debian/Ubuntu install what is missing with:\n  sudo apt-get install -y ${[...packages].join(' ')}`);
  return false;
}

// ---- processes -----------------------------------------------------------------------------------
function sh(args, opts = {}) {
  const r = spawnSync(args[0], args.slice(1), { input: opts.input ?? '', env: opts.env ?? process.env, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw new Error(`${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !opts.ok?.includes(r.status)) {
    throw new Error(`${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout).trim()}`);
  }
  return r;
}
const inNs = (ns, args, opts) => sh(['ip', 'netns', 'exec', ns, ...args], opts);

const state = { namespaces: [], children: [], dir: undefined, cleaned: false };

function cleanup() {
  if (state.cleaned) return;
  state.cleaned = true;
  for (const c of state.children) c.kill('SIGKILL');
  for (const ns of [...state.namespaces].reverse()) spawnSync('ip', ['netns', 'del', ns]);
  if (state.dir) rmSync(state.dir, { recursive: true, force: true });
}

function newNs(name) {
  sh(['ip', 'netns', 'add', name]);
  state.namespaces.push(name);
  inNs(name, ['ip', 'link', 'set', 'lo', 'up']);
  inNs(name, ['sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
}

function serve(ns, tag, port, bind = '::') {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ECHO_SERVER, tag, String(port), bind], { stdio: ['ignore', 'pipe', 'inherit'] });
  state.children.push(child);
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`server ${tag} did not start`)), 10_000);
    child.stdout.once('data', () => {
      clearTimeout(t);
      ok();
    });
    child.once('exit', (code) => fail(new Error(`server ${tag} exited with ${code}`)));
  });
}

/** One TCP request; returns "<tag> <peer>" or undefined. */
function request(ns, host, port) {
  const r = inNs(ns, [process.execPath, ECHO_CLIENT, 'tcp', host, String(port), '1500'], { ok: [1] });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

let failures = 0;
function expectReply(what, ns, host, port, wantTag) {
  const got = request(ns, host, port);
  const [tag, peer] = (got ?? '').split(' ');
  const ok = tag === wantTag;
  if (!ok) failures++;
  say(`  ${ok ? 'ok  ' : 'FAIL'} ${what.padEnd(48)} -> ${got ? `answered by ${tag} (it saw the client as ${peer})` : 'no answer'}${ok ? '' : `   [expected ${wantTag}]`}`);
}

// ---- CNI, the way a runtime calls it ----------------------------------------------------------------
function cniEnv(command, id, netns) {
  return { ...process.env, CNI_COMMAND: command, CNI_CONTAINERID: id, CNI_NETNS: `/var/run/netns/${netns}`, CNI_IFNAME: 'eth0', CNI_PATH: CNI_BIN };
}

function addPod(ctx, netns, id, portMappings, portmapExtra = {}) {
  const bridge = ctx.conflist.plugins[0];
  const bridgeRes = inNs(ctx.node, [join(CNI_BIN, 'bridge')], { env: cniEnv('ADD', id, netns), input: JSON.stringify({ cniVersion: ctx.conflist.cniVersion, name: ctx.conflist.name, ...bridge }) });
  const prevResult = JSON.parse(bridgeRes.stdout);
  return portmapAdd(ctx, netns, id, prevResult, portMappings, portmapExtra);
}

function portmapAdd(ctx, netns, id, prevResult, portMappings, portmapExtra = {}) {
  const conf = {
    cniVersion: ctx.conflist.cniVersion,
    name: ctx.conflist.name,
    ...ctx.conflist.plugins[1],
    ...portmapExtra,
    runtimeConfig: { portMappings },
    prevResult,
  };
  const res = inNs(ctx.node, [PLUGIN], { env: cniEnv('ADD', id, netns), input: JSON.stringify(conf) });
  const result = JSON.parse(res.stdout);
  const ip4 = result.ips.map((i) => i.address.split('/')[0]).find((a) => !a.includes(':'));
  return { id, netns, prevResult, ip4 };
}

function portmapCli(ctx, args) {
  const r = inNs(ctx.node, [PLUGIN, ...args], { ok: [1] });
  return r.stdout;
}

// ---- the story -----------------------------------------------------------------------------------
async function main() {
  if (!preflight()) return 2;
  const prefix = `pmdemo${randomBytes(2).toString('hex')}`;
  state.dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  const ctx = { node: `${prefix}-node`, client: `${prefix}-client`, conflist: undefined };
  ctx.conflist = {
    cniVersion: '1.0.0',
    name: 'demo-net',
    plugins: [
      {
        type: 'bridge', bridge: 'cni0', isGateway: true, ipMasq: false, hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: '10.244.0.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: join(state.dir, 'ipam') },
      },
      { type: 'portmap', capabilities: { portMappings: true }, backend: 'nftables' },
    ],
  };
  const confDir = join(state.dir, 'net.d');
  sh(['mkdir', '-p', confDir]);
  writeFileSync(join(confDir, '10-demo.conflist'), JSON.stringify(ctx.conflist, null, 2));

  step(`Network namespaces ${prefix}-*: a node (${NODE_IP}), a client (${CLIENT_IP}) on its uplink, and pods`);
  newNs(ctx.node);
  newNs(ctx.client);
  inNs(ctx.node, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
  sh(['ip', 'link', 'add', 'up0', 'netns', ctx.node, 'type', 'veth', 'peer', 'name', 'up0', 'netns', ctx.client]);
  sh(['ip', '-n', ctx.node, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0']);
  sh(['ip', '-n', ctx.client, 'addr', 'add', `${CLIENT_IP}/24`, 'dev', 'up0']);
  sh(['ip', '-n', ctx.node, 'link', 'set', 'up0', 'up']);
  sh(['ip', '-n', ctx.client, 'link', 'set', 'up0', 'up']);
  say(`    conflist: bridge (cni0, host-local 10.244.0.0/24) + portmap (this plugin, nftables backend)`);

  step('ADD pod "web" with hostPort 8080 -> 80, and a second pod "other" without hostPorts');
  const webNs = `${prefix}-web`;
  const otherNs = `${prefix}-other`;
  newNs(webNs);
  newNs(otherNs);
  const web = addPod(ctx, webNs, `${prefix}-web`, [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }]);
  const other = addPod(ctx, otherNs, `${prefix}-other`, []);
  await serve(webNs, 'web-pod', 80);
  say(`    web: ${web.ip4}, other: ${other.ip4}; a small TCP server in "web" answers "<its name> <client address>"`);

  step('Traffic through the hostPort');
  expectReply(`client -> ${NODE_IP}:8080`, ctx.client, NODE_IP, 8080, 'web-pod');
  expectReply('node -> 127.0.0.1:8080', ctx.node, '127.0.0.1', 8080, 'web-pod');
  expectReply(`node -> ${NODE_IP}:8080`, ctx.node, NODE_IP, 8080, 'web-pod');
  expectReply(`hairpin: pod "other" -> ${NODE_IP}:8080`, otherNs, NODE_IP, 8080, 'web-pod');
  expectReply(`hairpin: pod "web" -> itself via ${NODE_IP}:8080`, webNs, NODE_IP, 8080, 'web-pod');

  step('portmap list (in the node namespace): the hostPorts that ss/netstat cannot show');
  say(indent(portmapCli(ctx, ['list'])));

  step(`Service capture: kube-proxy in ipvs mode puts ClusterIP ${CLUSTER_IP} on kube-ipvs0, so it is a local address`);
  sh(['ip', '-n', ctx.node, 'link', 'add', 'kube-ipvs0', 'type', 'bridge']);
  sh(['ip', '-n', ctx.node, 'addr', 'add', `${CLUSTER_IP}/32`, 'dev', 'kube-ipvs0']);
  sh(['ip', '-n', ctx.node, 'link', 'set', 'kube-ipvs0', 'up']);
  if (onPath('ipset')) {
    inNs(ctx.node, ['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port']);
    inNs(ctx.node, ['ipset', 'add', 'KUBE-CLUSTER-IP', `${CLUSTER_IP},tcp:3306`]);
  }
  await serve(ctx.node, 'mysql-service', 3306, CLUSTER_IP);
  say(`    a stand-in for the Service's backend listens on ${CLUSTER_IP}:3306 (ipvs would forward it to the endpoints)`);
  expectReply(`node -> Service ${CLUSTER_IP}:3306`, ctx.node, CLUSTER_IP, 3306, 'mysql-service');

  step('ADD pod "db" with hostPort 3306, afterServices/serviceCIDRs off (the reference plugin\'s behaviour)');
  const dbNs = `${prefix}-db`;
  newNs(dbNs);
  const db = addPod(ctx, dbNs, `${prefix}-db`, [{ hostPort: 3306, containerPort: 3306, protocol: 'tcp' }]);
  await serve(dbNs, 'db-pod', 3306);
  expectReply(`client -> ${NODE_IP}:3306`, ctx.client, NODE_IP, 3306, 'db-pod');
  expectReply(`node -> Service ${CLUSTER_IP}:3306  (captured!)`, ctx.node, CLUSTER_IP, 3306, 'db-pod');
  say('\n    portmap doctor says:');
  say(indent(portmapCli(ctx, ['doctor', '--cni-conf-dir', confDir])));

  step(`re-ADD "db" with "afterServices": true, "serviceCIDRs": ["${SERVICE_CIDR}"]`);
  portmapAdd(ctx, dbNs, db.id, db.prevResult, [{ hostPort: 3306, containerPort: 3306, protocol: 'tcp' }], { afterServices: true, serviceCIDRs: [SERVICE_CIDR] });
  expectReply(`client -> ${NODE_IP}:3306`, ctx.client, NODE_IP, 3306, 'db-pod');
  expectReply(`node -> Service ${CLUSTER_IP}:3306`, ctx.node, CLUSTER_IP, 3306, 'mysql-service');
  say('\n    portmap doctor says:');
  say(indent(portmapCli(ctx, ['doctor', '--cni-conf-dir', confDir])));
  step('portmap list');
  say(indent(portmapCli(ctx, ['list'])));

  say(failures === 0 ? '\nDemo finished: every request went where it should.' : `\nDemo finished with ${failures} unexpected result(s).`);
  return failures === 0 ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    say(`\n${sig}: cleaning up`);
    cleanup();
    process.exit(130);
  });
}

let code;
try {
  code = await main();
} catch (err) {
  say(`\ndemo failed: ${err.message}`);
  code = 1;
} finally {
  if (state.namespaces.length > 0) say('\n==> Cleaning up: namespaces, servers and temporary files removed');
  cleanup();
}
process.exit(code);
