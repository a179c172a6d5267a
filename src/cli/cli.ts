import { resolve } from 'node:path';
import { SUPPORTED_VERSIONS } from '../cni/versions.js';
import { SBIN_DIRS, setFallbackDirs } from '../host/exec.js';
import { EXIT_USAGE } from './usage.js';

import { VERSION } from './version.js';

export { VERSION };

/** The runtime this process runs on: Bun in the standalone executable, else Node.js. */
const runtime = (): string => (process.versions.bun ? `Bun ${process.versions.bun}` : `Node.js ${process.versions.node}`);


const HELP = `portmap ${VERSION}: CNI port-mapping (hostPort) plugin, nftables or iptables

Usage: portmap COMMAND [OPTIONS]     (portmap COMMAND --help: every option, examples, exit statuses)

As a CNI plugin it is run by a container runtime with CNI_COMMAND set (ADD, DEL, CHECK, GC, STATUS,
VERSION) and the network configuration on stdin. Install it as /opt/cni/bin/portmap and chain it
after the main plugin in a .conflist with "capabilities": {"portMappings": true}.

Operator commands (no CNI_COMMAND; run as root, in the node's network namespace):
  list        every hostPort forward on this node, read live from the kernel: ours (nft table inet
              cni_portmap) and the reference plugin's (iptables CNI-DN-* chains, nft cni_hostport)
  doctor      checks the node: duplicate and taken-over host ports, pods whose hostPorts are not
              forwarded, hostPorts that take Service traffic, every CNI configuration file (invalid
              JSON, values ADD rejects, misspelt keys, the portMappings capability), sysctls, tools
  restore     re-creates the hostPort rules of every live pod from portmap's records (and adopts
              pods the runtime's libcni cache lists), e.g. after a firewall reload flushed them
  watch       runs until SIGTERM and restores within a second after our rules vanish
  install     installs this executable as /opt/cni/bin/portmap atomically (keeping the replaced
              one); --chain adds portmap to the conflist the runtime loads
  uninstall   back to the reference plugin: re-creates every hostPort forward of ours in its
              iptables layout, removes our nft table, puts /opt/cni/bin/portmap.orig back

Options:
  --help, -h      this text
  --version       plugin version, its runtime, CNI protocol versions

Examples:
  /opt/cni/bin/portmap doctor
  /opt/cni/bin/portmap list --json
  /opt/cni/bin/portmap restore --dry-run

Exit status (every command; "portmap COMMAND --help" says which apply):
  0  success (doctor: healthy)
  1  the command failed, or doctor has findings
  2  usage error (an unknown command or option, a missing value)
  4  list, doctor, restore: the node's state could not be read (not root, a tool failed)

Tools (nft, iptables, conntrack, ip, ss, ipset) are looked for on PATH, then in /usr/local/sbin,
/usr/sbin and /sbin. Environment: PORTMAP_LOG=debug for debug logs on stderr,
PORTMAP_LOG_FILE=<path> to also append them to a file.
`;

const PROTOCOLS = `CNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}`;

const out = (s: string): void => {
  process.stdout.write(s);
};
const err = (s: string): void => {
  process.stderr.write(s);
};

/** How to run this executable again, for the commands doctor prints: its absolute path. */
function self(): string {
  const script = process.argv[1];
  if (process.versions.bun !== undefined || script === undefined) return process.execPath;
  // The bundle run by node: argv[1] is the script; a Bun executable's argv[1] is its embedded entry.
  return script.startsWith('/$bunfs/') ? process.execPath : resolve(script);
}

export async function runCli(argv: readonly string[]): Promise<number> {
  // Runtimes and sudo may give us a PATH without the sbin directories that hold nft, iptables, ip...
  setFallbackDirs(SBIN_DIRS);
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
  if (cmd === 'list') {
    const { runListCommand } = await import('./list.js');
    return runListCommand(rest, self(), out, err);
  }
  if (cmd === 'doctor') {
    const { runDoctorCommand } = await import('./doctor/run.js');
    return runDoctorCommand(rest, self(), out, err);
  }
  if (cmd === 'restore' || cmd === 'watch') {
    const { runRestoreCommand } = await import('./restore.js');
    return runRestoreCommand(cmd, rest, out, err, self());
  }
  err(`portmap: unknown command ${JSON.stringify(cmd)}\nRun "portmap --help" for the commands.\n`);
  return EXIT_USAGE;
}
