import { SUPPORTED_VERSIONS } from '../cni/versions.js';

export const VERSION = '0.1.0';

const HELP = `portmap ${VERSION}: CNI port-mapping (hostPort) plugin, nftables or iptables

As a CNI plugin it is run by a container runtime with CNI_COMMAND set (ADD, DEL, CHECK, GC, STATUS,
VERSION) and the network configuration on stdin. Install it as /opt/cni/bin/portmap and chain it
after the main plugin in a .conflist with "capabilities": {"portMappings": true}.

Operator commands (no CNI_COMMAND):
  portmap --help        this text
  portmap --version     plugin and CNI protocol versions

Environment: PORTMAP_LOG=debug for debug logs on stderr, PORTMAP_LOG_FILE=<path> to also append them to a file.
`;

export async function runCli(argv: readonly string[]): Promise<number> {
  const [cmd] = argv;
  if (cmd === undefined) {
    process.stderr.write(`CNI plugin portmap ${VERSION}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n(run "portmap --help" for operator commands)\n`);
    return 0;
  }
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(HELP);
    return 0;
  }
  if (cmd === '--version' || cmd === 'version') {
    process.stdout.write(`portmap ${VERSION}\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`);
    return 0;
  }
  process.stderr.write(`portmap: unknown command ${JSON.stringify(cmd)}\n\n${HELP}`);
  return 2;
}
