/**
 * A simulated kube-proxy in a TestBed's node namespace, with the real rule shapes of each proxy mode
 * (kubernetes pkg/proxy/{iptables,ipvs,nftables}/proxier.go), for one ClusterIP Service and one NodePort:
 *
 * - iptables mode (iptables-legacy or iptables-nft): nat `KUBE-SERVICES` jumped to from position 1 of
 *   PREROUTING and OUTPUT ("kubernetes service portals", inserted the way EnsureRule(Prepend) does),
 *   KUBE-SVC-* / KUBE-SEP-* DNAT for the ClusterIP, KUBE-EXT-* behind KUBE-NODEPORTS for the NodePort,
 *   `-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS` as the last KUBE-SERVICES rule, KUBE-MARK-MASQ and
 *   KUBE-POSTROUTING.
 * - ipvs mode (with either iptables flavour): the ClusterIP bound on `kube-ipvs0` (a bridge stands in for
 *   the dummy link type, which this kernel lacks), the KUBE-CLUSTER-IP (hash:ip,port) and
 *   KUBE-NODE-PORT-TCP (bitmap:port) ipsets, KUBE-SERVICES ending with
 *   `-m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT`. There is no IPVS in this kernel: the load
 *   balancer is stood in for by echo servers in the node namespace on ClusterIP:port and on the NodePort
 *   (IPVS virtual servers see the packets that reach LOCAL_IN, exactly like a local listener). That the
 *   ClusterIP is a local address is what makes the hostPort hijack possible.
 * - nftables mode: `table ip kube-proxy` with nat-prerouting/nat-output at priority dstnat (-100), the
 *   `service-ips` and `service-nodeports` verdict maps, service-/endpoint-/external- chains and the
 *   mark-for-masquerade / masquerading chains.
 *
 * Everything happens inside the bed's node namespace; the Service backend is a pod of the bed.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_V4, ROOT, type TestBed, inNs } from './harness.js';

export type KubeProxyMode = 'iptables-legacy' | 'iptables-nft' | 'ipvs-legacy' | 'ipvs-nft' | 'nftables';
export const KUBE_PROXY_MODES: readonly KubeProxyMode[] = ['iptables-legacy', 'iptables-nft', 'ipvs-legacy', 'ipvs-nft', 'nftables'];

export const SERVICE_CIDR = '10.96.0.0/12';
export const CLUSTER_IP = '10.96.0.10';
export const SERVICE_PORT = 3306;
/** A NodePort in the default range, used as a hostPort too: the conflict the tests make real. */
export const NODE_PORT = 30080;
export const CLUSTER_CIDR = '10.244.0.0/16';
const MASQ_MARK = '0x4000';

const ECHO_SERVER = join(ROOT, 'test', 'integration', 'echo-server.mjs');

export interface KubeProxyOptions {
  mode: KubeProxyMode;
  /** The Service's endpoint (a pod of the bed); unused in ipvs mode, where a local listener stands in for IPVS. */
  endpoint: string;
  endpointPort?: number;
  /** Tag of the echo servers that stand in for IPVS. */
  tag?: string;
}

export const isIpvs = (mode: KubeProxyMode): boolean => mode.startsWith('ipvs');
/** The iptables flavour a mode writes with, undefined for nftables mode. */
export function flavourOf(mode: KubeProxyMode): 'legacy' | 'nft' | undefined {
  if (mode.endsWith('-legacy')) return 'legacy';
  if (mode.endsWith('-nft')) return 'nft';
  return undefined;
}

/** The jumps kube-proxy keeps at the top of the nat base chains (iptablesJumpChain, EnsureRule(Prepend)). */
const JUMPS: ReadonlyArray<{ from: string; to: string; comment: string }> = [
  { from: 'PREROUTING', to: 'KUBE-SERVICES', comment: 'kubernetes service portals' },
  { from: 'OUTPUT', to: 'KUBE-SERVICES', comment: 'kubernetes service portals' },
  { from: 'POSTROUTING', to: 'KUBE-POSTROUTING', comment: 'kubernetes postrouting rules' },
];

/** Chain names as kube-proxy's servicePortChainName/servicePortEndpointChainName make them (hash part fixed). */
const SVC = { cluster: 'KUBE-SVC-OMSB7IU5JYUDKXQK', clusterSep: 'KUBE-SEP-4VAWQ3ZRUZNXXQ6P', node: 'KUBE-SVC-2DLAXUM7GNNBUAF7', nodeSep: 'KUBE-SEP-XNQF7LDAXP3GH2OV', ext: 'KUBE-EXT-2DLAXUM7GNNBUAF7' };

export class KubeProxySim {
  private readonly servers: ChildProcess[] = [];

  private constructor(
    readonly bed: TestBed,
    readonly opts: Required<KubeProxyOptions>,
  ) {}

  /** Installs the simulated kube-proxy in the bed's node namespace (as a first sync does). */
  static async install(bed: TestBed, options: KubeProxyOptions): Promise<KubeProxySim> {
    const sim = new KubeProxySim(bed, { endpointPort: SERVICE_PORT, tag: 'service', ...options });
    // A node has a default route; without one, node -> ClusterIP fails before any NAT hook in iptables/nftables mode.
    await inNs(bed.node, ['ip', 'route', 'replace', 'default', 'via', CLIENT_V4]);
    const { mode } = sim.opts;
    if (mode === 'nftables') await sim.installNftables();
    else if (isIpvs(mode)) await sim.installIpvs();
    else await sim.installIptables();
    return sim;
  }

  get flavour(): 'legacy' | 'nft' | undefined {
    return flavourOf(this.opts.mode);
  }

  /** iptables-legacy / iptables-nft (and -restore) for this mode's flavour. */
  iptablesCmd(restore = false): string {
    return `iptables-${this.flavour ?? 'nft'}${restore ? '-restore' : ''}`;
  }

  /** `iptables -t nat -S <chain>` in the node namespace, in this mode's flavour. */
  async natRules(chain: string): Promise<string[]> {
    const res = await inNs(this.bed.node, [this.iptablesCmd(), '-w', '-t', 'nat', '-S', chain]);
    return res.stdout.trim().split('\n').filter((l) => l.startsWith('-A '));
  }

  /** kube-proxy's periodic sync of its jumps: EnsureRule(Prepend) = check, insert at 1 when missing. */
  async ensureJumps(): Promise<void> {
    if (!this.flavour) return;
    for (const j of JUMPS) {
      const spec = ['-m', 'comment', '--comment', j.comment, '-j', j.to];
      const exists = await inNs(this.bed.node, [this.iptablesCmd(), '-w', '-t', 'nat', '-C', j.from, ...spec], { ok: [1] });
      if (exists.code !== 0) await inNs(this.bed.node, [this.iptablesCmd(), '-w', '-t', 'nat', '-I', j.from, '1', ...spec]);
    }
  }

  private async restore(text: string): Promise<void> {
    await inNs(this.bed.node, [this.iptablesCmd(true), '-w', '--noflush'], { input: text });
  }

  /** The chains and rules common to iptables and ipvs mode: KUBE-MARK-MASQ and KUBE-POSTROUTING. */
  private masqRules(): string[] {
    return [
      `-A KUBE-POSTROUTING -m mark ! --mark ${MASQ_MARK}/${MASQ_MARK} -j RETURN`,
      `-A KUBE-POSTROUTING -j MARK --xor-mark ${MASQ_MARK}`,
      '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
      `-A KUBE-MARK-MASQ -j MARK --or-mark ${MASQ_MARK}`,
    ];
  }

  private async installIptables(): Promise<void> {
    const { endpoint, endpointPort } = this.opts;
    const ep = `${endpoint}:${endpointPort}`;
    const lines = [
      '*nat',
      ...['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', SVC.cluster, SVC.clusterSep, SVC.node, SVC.nodeSep, SVC.ext].map((c) => `:${c} - [0:0]`),
      `-A KUBE-SERVICES -d ${CLUSTER_IP}/32 -p tcp -m comment --comment "default/mysql:mysql cluster IP" -m tcp --dport ${SERVICE_PORT} -j ${SVC.cluster}`,
      `-A KUBE-SERVICES -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j ${SVC.node}`,
      `-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS`,
      `-A KUBE-NODEPORTS -p tcp -m comment --comment "default/web:http" -m tcp --dport ${NODE_PORT} -j ${SVC.ext}`,
      `-A ${SVC.cluster} ! -s ${CLUSTER_CIDR} -d ${CLUSTER_IP}/32 -p tcp -m comment --comment "default/mysql:mysql cluster IP" -m tcp --dport ${SERVICE_PORT} -j KUBE-MARK-MASQ`,
      `-A ${SVC.cluster} -m comment --comment "default/mysql:mysql -> ${ep}" -j ${SVC.clusterSep}`,
      `-A ${SVC.clusterSep} -s ${endpoint}/32 -m comment --comment "default/mysql:mysql" -j KUBE-MARK-MASQ`,
      `-A ${SVC.clusterSep} -p tcp -m comment --comment "default/mysql:mysql" -m tcp -j DNAT --to-destination ${ep}`,
      `-A ${SVC.ext} -m comment --comment "masquerade traffic for default/web:http external destinations" -j KUBE-MARK-MASQ`,
      `-A ${SVC.ext} -j ${SVC.node}`,
      `-A ${SVC.node} ! -s ${CLUSTER_CIDR} -d 10.96.0.20/32 -p tcp -m comment --comment "default/web:http cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`,
      `-A ${SVC.node} -m comment --comment "default/web:http -> ${ep}" -j ${SVC.nodeSep}`,
      `-A ${SVC.nodeSep} -s ${endpoint}/32 -m comment --comment "default/web:http" -j KUBE-MARK-MASQ`,
      `-A ${SVC.nodeSep} -p tcp -m comment --comment "default/web:http" -m tcp -j DNAT --to-destination ${ep}`,
      ...this.masqRules(),
      'COMMIT',
      '',
    ];
    // kube-proxy creates its chains and jumps first (createAndLinkKubeChain), then restores the rules.
    await this.restore(['*nat', ...['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ'].map((c) => `:${c} - [0:0]`), 'COMMIT', ''].join('\n'));
    await this.ensureJumps();
    await this.restore(lines.join('\n'));
  }

  private async installIpvs(): Promise<void> {
    const ns = this.bed.node;
    await inNs(ns, ['ip', 'link', 'add', 'kube-ipvs0', 'type', 'bridge']);
    await inNs(ns, ['ip', 'addr', 'add', `${CLUSTER_IP}/32`, 'dev', 'kube-ipvs0']);
    await inNs(ns, ['ipset', 'create', 'KUBE-CLUSTER-IP', 'hash:ip,port', 'family', 'inet', '-exist']);
    await inNs(ns, ['ipset', 'add', 'KUBE-CLUSTER-IP', `${CLUSTER_IP},tcp:${SERVICE_PORT}`, '-exist']);
    await inNs(ns, ['ipset', 'create', 'KUBE-NODE-PORT-TCP', 'bitmap:port', 'range', '0-65535', '-exist']);
    await inNs(ns, ['ipset', 'add', 'KUBE-NODE-PORT-TCP', String(NODE_PORT), '-exist']);
    // The IPVS virtual servers: ClusterIP:port (bound on kube-ipvs0) and the NodePort on every local address.
    await this.listen(CLUSTER_IP, SERVICE_PORT);
    await this.listen('0.0.0.0', NODE_PORT);
    const lines = [
      '*nat',
      ...['KUBE-SERVICES', 'KUBE-NODE-PORT', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ', 'KUBE-LOAD-BALANCER', 'KUBE-FIREWALL'].map((c) => `:${c} - [0:0]`),
      '-A KUBE-NODE-PORT -p tcp -m comment --comment "Kubernetes nodeport TCP port for masquerade purpose" -m set --match-set KUBE-NODE-PORT-TCP dst -j KUBE-MARK-MASQ',
      `-A KUBE-SERVICES ! -s ${CLUSTER_CIDR} -m comment --comment "Kubernetes service cluster ip + port for masquerade purpose" -m set --match-set KUBE-CLUSTER-IP dst,dst -j KUBE-MARK-MASQ`,
      '-A KUBE-SERVICES -m addrtype --dst-type LOCAL -j KUBE-NODE-PORT',
      '-A KUBE-LOAD-BALANCER -j KUBE-MARK-MASQ',
      '-A KUBE-SERVICES -m set --match-set KUBE-CLUSTER-IP dst,dst -j ACCEPT',
      ...this.masqRules(),
      'COMMIT',
      '',
    ];
    await this.restore(['*nat', ...['KUBE-SERVICES', 'KUBE-POSTROUTING'].map((c) => `:${c} - [0:0]`), 'COMMIT', ''].join('\n'));
    await this.ensureJumps();
    await this.restore(lines.join('\n'));
  }

  private async installNftables(): Promise<void> {
    const { endpoint, endpointPort } = this.opts;
    const mysql = 'service-OMSB7IU5-default/mysql/tcp/mysql';
    const mysqlEp = `endpoint-4VAWQ3ZR-default/mysql/tcp/mysql__${endpoint}/${endpointPort}`;
    const web = 'service-2DLAXUM7-default/web/tcp/http';
    const webExt = 'external-2DLAXUM7-default/web/tcp/http';
    const webEp = `endpoint-XNQF7LDA-default/web/tcp/http__${endpoint}/${endpointPort}`;
    const t = 'ip kube-proxy';
    const text = [
      `add table ${t} { comment "rules for kube-proxy" ; }`,
      `add chain ${t} mark-for-masquerade`,
      `add rule ${t} mark-for-masquerade mark set mark or ${MASQ_MARK}`,
      `add chain ${t} masquerading`,
      `add rule ${t} masquerading mark and ${MASQ_MARK} == 0 return`,
      `add rule ${t} masquerading mark set mark xor ${MASQ_MARK}`,
      `add rule ${t} masquerading masquerade fully-random`,
      `add chain ${t} services`,
      `add chain ${t} nat-prerouting { type nat hook prerouting priority dstnat ; }`,
      `add chain ${t} nat-output { type nat hook output priority -100 ; }`,
      `add chain ${t} nat-postrouting { type nat hook postrouting priority srcnat ; }`,
      `add rule ${t} nat-prerouting jump services`,
      `add rule ${t} nat-output jump services`,
      `add rule ${t} nat-postrouting jump masquerading`,
      `add map ${t} service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }`,
      `add map ${t} service-nodeports { type inet_proto . inet_service : verdict ; comment "NodePort traffic" ; }`,
      `add rule ${t} services ip daddr . meta l4proto . th dport vmap @service-ips`,
      `add rule ${t} services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports`,
      `add chain ${t} ${mysqlEp}`,
      `add rule ${t} ${mysqlEp} ip saddr ${endpoint} jump mark-for-masquerade`,
      `add rule ${t} ${mysqlEp} meta l4proto tcp dnat to ${endpoint}:${endpointPort}`,
      `add chain ${t} ${mysql}`,
      `add rule ${t} ${mysql} ip daddr ${CLUSTER_IP} tcp dport ${SERVICE_PORT} ip saddr != ${CLUSTER_CIDR} jump mark-for-masquerade`,
      `add rule ${t} ${mysql} numgen random mod 1 vmap { 0 : goto ${mysqlEp} }`,
      `add chain ${t} ${webEp}`,
      `add rule ${t} ${webEp} ip saddr ${endpoint} jump mark-for-masquerade`,
      `add rule ${t} ${webEp} meta l4proto tcp dnat to ${endpoint}:${endpointPort}`,
      `add chain ${t} ${web}`,
      `add rule ${t} ${web} numgen random mod 1 vmap { 0 : goto ${webEp} }`,
      `add chain ${t} ${webExt}`,
      `add rule ${t} ${webExt} jump mark-for-masquerade`,
      `add rule ${t} ${webExt} goto ${web}`,
      `add element ${t} service-ips { ${CLUSTER_IP} . tcp . ${SERVICE_PORT} comment "default/mysql:mysql" : goto ${mysql} }`,
      `add element ${t} service-nodeports { tcp . ${NODE_PORT} comment "default/web:http" : goto ${webExt} }`,
      '',
    ].join('\n');
    // nft cannot read `-f -` from the socket Node gives a child as stdin: go through a file.
    const file = join(this.bed.dir, `kube-proxy-${Date.now()}.nft`);
    writeFileSync(file, text);
    await inNs(this.bed.node, ['nft', '-f', file]);
  }

  /** An echo server in the node namespace on addr:port, standing in for an IPVS virtual server. */
  private async listen(addr: string, port: number): Promise<void> {
    const child = spawn('ip', ['netns', 'exec', this.bed.node, process.execPath, ECHO_SERVER, this.opts.tag, String(port), addr], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.servers.push(child);
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error(`IPVS stand-in on ${addr}:${port} did not start`)), 10_000);
      child.stdout!.once('data', () => {
        clearTimeout(t);
        ok();
      });
      child.once('exit', (code) => fail(new Error(`IPVS stand-in on ${addr}:${port} exited with ${code}`)));
    });
  }

  /** Stops the IPVS stand-ins (the namespaces go with the bed). */
  stop(): void {
    for (const s of this.servers) s.kill('SIGKILL');
  }
}
