import { SUPPORTED_VERSIONS } from '../cni/versions.js';
import { DEFAULT_CNI_CONF_DIR } from './cni-dirs.js';

/** package.json's version, set by build/build.mjs (esbuild `define`); unbundled (tests) there is none. */
declare const PORTMAP_VERSION: string | undefined;
export const VERSION = typeof PORTMAP_VERSION === 'string' ? PORTMAP_VERSION : '0.0.0-unbundled';

/** The runtime this process runs on: Bun in the standalone executable, else Node.js. */
const runtime = (): string => (process.versions.bun ? `Bun ${process.versions.bun}` : `Node.js ${process.versions.node}`);


const HELP = `portmap ${VERSION}: CNI port-mapping (hostPort) plugin, nftables or iptables

As a CNI plugin it is run by a container runtime with CNI_COMMAND set (ADD, DEL, CHECK, GC, STATUS,
VERSION) and the network configuration on stdin. Install it as /opt/cni/bin/portmap and chain it
after the main plugin in a .conflist with "capabilities": {"portMappings": true}.

Operator commands (no CNI_COMMAND; run as root, in the node's network namespace):
  portmap list [--json]     every hostPort forward on this node, read live from the kernel: ours
                            (nft table inet cni_portmap) and the reference plugin's (iptables
                            CNI-DN-* chains, nft tables ip/ip6 cni_hostport)
  portmap doctor [--json] [--cni-conf-dir DIR]
                            checks the node: duplicate owners of a host port, hostPorts that take
                            Service traffic, iptables flavour splits, processes shadowed by a
                            hostPort, conflists without the portMappings capability, ip_forward,
                            route_localnet, missing tools; drift: pods whose hostPorts are not
                            forwarded (rules flushed, taken over, portmap not chained), forwards
                            and records of pods that are gone, conflists that are silent no-ops.
                            Exit 0 when healthy, 1 with findings. DIR defaults to ${DEFAULT_CNI_CONF_DIR};
                            also --data-dir DIR and --cni-cache-dir DIR (as for restore).
  portmap install [--cni-bin-dir DIR] [--chain [--kubernetes --service-cidr CIDR]] [--dry-run]
                            installs this executable as DIR/portmap (default /opt/cni/bin) atomically,
                            keeping the replaced binary; --chain adds portmap to the conflist the
                            runtime loads. "portmap install --help" for details.
  portmap uninstall [--cni-bin-dir DIR] [--dry-run]
                            back to the reference plugin: re-creates every hostPort forward of ours in
                            its iptables layout, removes our nft table, puts DIR/portmap.orig back.
  portmap restore [--json] [--data-dir DIR] [--cni-cache-dir DIR] [--force] [--dry-run]
                            re-creates the hostPort rules of every live pod from portmap's records
                            (and adopts pods the runtime's libcni cache lists), e.g. after a
                            firewall reload flushed them; removes records of pods that are gone
  portmap watch [--data-dir DIR] [--cni-cache-dir DIR]
                            runs until SIGTERM and restores within a second after our rules vanish
                            (portmap restore --help for both)
  portmap --help            this text
  portmap --version         plugin version, its runtime, CNI protocol versions

Environment: PORTMAP_LOG=debug for debug logs on stderr, PORTMAP_LOG_FILE=<path> to also append them to a file.
`;

const PROTOCOLS = `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}`;

const out = (s: string): void => {
  process.stdout.write(s);
};
const err = (s: string): void => {
  process.stderr.write(s);
};

interface Parsed {
  json: boolean;
  cniConfDir: string;
  /** doctor: the records and the libcni cache it audits against the kernel */
  dataDir?: string;
  cniCacheDir?: string;
  bad?: string;
}

const CONF_DIR_OPTION = '--cni-conf-dir';

function parseOptions(args: readonly string[], allowConfDir: boolean): Parsed {
  const p: Parsed = { json: false, cniConfDir: DEFAULT_CNI_CONF_DIR };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--json' || a === '-j') p.json = true;
    else if (allowConfDir && a === CONF_DIR_OPTION && args[i + 1] !== undefined) p.cniConfDir = args[++i]!;
    else if (allowConfDir && a.startsWith(`${CONF_DIR_OPTION}=`)) p.cniConfDir = a.slice(CONF_DIR_OPTION.length + 1);
    else if (allowConfDir && (a === '--data-dir' || a === '--cni-cache-dir') && args[i + 1] !== undefined) {
      if (a === '--data-dir') p.dataDir = args[++i]!;
      else p.cniCacheDir = args[++i]!;
    }
    else return { ...p, bad: a };
  }
  return p;
}

function rootNote(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    err('portmap: not running as root: reading nft and iptables rules needs root (try sudo)\n');
  }
}

export async function runCli(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined) {
    err(`CNI plugin portmap ${VERSION}\n${PROTOCOLS}\n(run "portmap --help" for operator commands)\n`);
    return 0;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    out(HELP);
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    out(`portmap ${VERSION}\nruntime: ${runtime()}\n${PROTOCOLS}\n`);
    return 0;
  }
  if (cmd === 'install') {
    const { runInstall } = await import('./install.js');
    return runInstall(rest, out, err);
  }
  if (cmd === 'uninstall') {
    const { runUninstall } = await import('./uninstall.js');
    return runUninstall(rest, out, err);
  }
  if (cmd === 'list' || cmd === 'doctor') {
    const opts = parseOptions(rest, cmd === 'doctor');
    if (opts.bad !== undefined) {
      err(`portmap ${cmd}: unknown option ${JSON.stringify(opts.bad)}\n\n${HELP}`);
      return 2;
    }
    rootNote();
    if (cmd === 'list') {
      const { runList } = await import('./list.js');
      return runList(opts, out, err);
    }
    const { runDoctor } = await import('./doctor/run.js');
    return runDoctor(opts, out);
  }
  if (cmd === 'restore' || cmd === 'watch') {
    rootNote();
    const { runRestoreCommand } = await import('./restore.js');
    return runRestoreCommand(cmd, rest, out, err);
  }
  err(`portmap: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
  return 2;
}
