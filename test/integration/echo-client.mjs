// Client for echo-server.mjs. Prints the reply line; exits 1 on timeout or error.
// Usage: node echo-client.mjs tcp|udp HOST PORT [TIMEOUT_MS] [SOURCE_PORT]
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [proto, host, portText, timeoutText = '2000', sourcePortText] = process.argv.slice(2);
const port = Number(portText);
const timeout = Number(timeoutText);
const fail = (why) => {
  process.stderr.write(`${why}\n`);
  process.exit(1);
};
setTimeout(() => fail('timeout'), timeout).unref();

if (proto === 'tcp') {
  let data = '';
  const sock = connect({ host, port, ...(sourcePortText ? { localPort: Number(sourcePortText) } : {}) });
  sock.setEncoding('utf8');
  sock.on('data', (d) => (data += d));
  sock.on('end', () => {
    process.stdout.write(data);
    process.exit(data ? 0 : 1);
  });
  sock.on('error', (e) => fail(e.message));
} else {
  const udp = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  udp.on('message', (msg) => {
    process.stdout.write(msg.toString());
    process.exit(0);
  });
  udp.on('error', (e) => fail(e.message));
  udp.bind(sourcePortText ? Number(sourcePortText) : 0, () => {
    const send = () => udp.send('ping', port, host);
    send();
    // UDP may be lost while rules change; resend a few times within the timeout.
    setInterval(send, 200).unref();
  });
}
