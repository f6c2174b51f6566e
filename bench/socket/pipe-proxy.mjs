// The baseline every Node proxy starts from: net.createServer + pipe(), round-robin.
//   node pipe-proxy.mjs <listen port> <server port>[,<server port>…] [<listen port> <server ports>]…
import { connect, createServer } from 'node:net';

const args = process.argv.slice(2);
for (let i = 0; i + 1 < args.length; i += 2) {
  const listen = Number(args[i]);
  const servers = args[i + 1].split(',').map(Number);
  let next = 0;
  createServer((client) => {
    const server = connect(servers[next++ % servers.length], '127.0.0.1');
    client.pipe(server).pipe(client);
    client.on('error', () => server.destroy());
    server.on('error', () => client.destroy());
  }).listen(listen, '127.0.0.1');
}
process.on('SIGTERM', () => process.exit(0));
