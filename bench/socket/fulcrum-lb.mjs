// Fulcrum's socket dataplane as the benchmark runs it: a kernel with rr, from the built
// packages (dist/), one service per pair of arguments.
//   node fulcrum-lb.mjs [--option key=json]… <listen port> <server port>[,<server port>…] …
import { createKernel } from '@fulcrum/kernel';
import socket from '@fulcrum/dataplane-socket';
import rr from '@fulcrum/scheduler-rr';

const args = process.argv.slice(2);
const options = {};
const pairs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--option') {
    const [k, v] = args[++i].split('=');
    options[k] = JSON.parse(v);
  } else pairs.push([args[i], args[++i]]);
}
const kernel = createKernel({ plugins: [socket, rr] });
await kernel.apply({
  dataplane: { name: 'socket', options },
  services: pairs.map(([listen, servers], i) => ({
    name: `s${i}`,
    listen: `127.0.0.1:${listen}`,
    scheduler: 'rr',
    realServers: servers.split(',').map((p) => ({ address: `127.0.0.1:${p}` })),
  })),
});
const stop = async () => {
  await kernel.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
