// One demo backend: an HTTP server that says which backend answered.
//   node backend.mjs <name> <port> [host]
import { createServer } from 'node:http';

const [name = 'one', portText = '9001', host = '127.0.0.1'] = process.argv.slice(2);
const port = Number(portText);
const server = createServer((req, res) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`backend ${name} (${host}:${port})\n`);
});
server.keepAliveTimeout = 5000;
server.listen(port, host, () =>
  console.log(`backend ${name} listening on ${host}:${port} (pid ${process.pid})`),
);
server.on('error', (e) => {
  console.error(`backend ${name}: ${e.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => server.close(() => process.exit(0)).closeAllConnections());
