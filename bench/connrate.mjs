// New-TCP-connection rate through a hostPort.
//   node connrate.mjs server PORT                      accepts, sends one byte and closes (server closes
//                                                      first, so the client's ports do not linger)
//   node connrate.mjs client HOST PORT SECONDS PARALLEL opens connections back to back from PARALLEL
//                                                      loops for SECONDS; prints {conns, errors, seconds, rate}
import { connect, createServer } from 'node:net';

const [mode, ...rest] = process.argv.slice(2);
if (mode === 'server') {
  const port = Number(rest[0]);
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    sock.end('x');
  });
  server.listen({ port, host: '0.0.0.0', backlog: 4096 }, () => process.stdout.write('ready\n'));
} else if (mode === 'client') {
  const [host, portText, secondsText, parallelText] = rest;
  const port = Number(portText);
  const seconds = Number(secondsText);
  const parallel = Number(parallelText);
  let conns = 0;
  let errors = 0;
  let running = true;
  const start = process.hrtime.bigint();
  const one = () =>
    new Promise((resolve) => {
      const sock = connect({ host, port });
      let got = false;
      sock.on('data', () => (got = true));
      sock.on('end', () => {
        if (got) conns++;
        else errors++;
        sock.destroy();
        resolve();
      });
      sock.on('error', () => {
        errors++;
        sock.destroy();
        resolve();
      });
    });
  const loop = async () => {
    while (running) await one();
  };
  setTimeout(() => (running = false), seconds * 1000);
  await Promise.all(Array.from({ length: parallel }, loop));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(`${JSON.stringify({ conns, errors, seconds: elapsed, rate: conns / elapsed })}\n`);
} else {
  process.stderr.write('usage: connrate.mjs server PORT | client HOST PORT SECONDS PARALLEL\n');
  process.exit(2);
}
