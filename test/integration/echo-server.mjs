// A TCP and UDP echo server for the integration tests: listens on [::]:PORT (dual stack) and on the
// same UDP port, and answers every connection or datagram with "<tag> <peer address>", so tests see
// both who answered and which source address reached it (masquerade or not).
// Usage: node echo-server.mjs TAG PORT [BIND]
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const [tag, portText, bind = '::'] = process.argv.slice(2);
const port = Number(portText);
const peer = (addr) => addr.replace(/^::ffff:/, '');

const tcp = createServer((sock) => {
  sock.end(`${tag} ${peer(sock.remoteAddress ?? '?')}\n`);
  sock.on('error', () => {});
});
tcp.listen({ port, host: bind, ipv6Only: false }, () => {
  const udp = createSocket({ type: bind.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  udp.on('message', (_msg, rinfo) => udp.send(`${tag} ${peer(rinfo.address)}\n`, rinfo.port, rinfo.address));
  udp.bind({ port, address: bind }, () => process.stdout.write('ready\n'));
});
process.on('SIGTERM', () => process.exit(0));
