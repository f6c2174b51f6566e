// `npm start` (after scripts/setup.mjs): the demo balancer of examples/basic — three small
// backends and the fulcrum daemon in front of them — and where to point curl. Ctrl-C stops
// everything. A backend can be killed alone (its pid is printed) to watch the balancer route
// around it without a failed request.
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { root } from './lib.mjs';

const example = join(root, 'examples', 'basic');
const children = [];
const start = (args, name) => {
  const child = spawn(process.execPath, args, { cwd: root, stdio: 'inherit' });
  child.on('exit', (code, signal) => {
    if (name === 'fulcrum') {
      stopAll();
      process.exitCode = code ?? (signal ? 1 : 0);
    }
  });
  children.push(child);
  return child;
};
const stopAll = () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
};

start([join(example, 'backends.mjs')], 'backends');
// The balancer starts once the backends listen: connections refused before that would
// (rightly) get them inhibited by the passive check for its first inhibit period.
await waitForPorts([9001, 9002, 9003], 10_000);
const logFormat = process.stdout.isTTY ? 'pretty' : 'json';
start(
  [
    join(root, 'packages', 'fulcrum', 'dist', 'bin.js'),
    'run',
    join(example, 'fulcrum.yaml'),
    '--log-format',
    logFormat,
  ],
  'fulcrum',
);

process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);

setTimeout(() => {
  console.log(`
  Fulcrum demo: a TCP service on 127.0.0.1:8080, wrr 3:2:1 over three backends.

    for i in 1 2 3 4 5 6; do curl -s 127.0.0.1:8080; done     # one one two one two three
    curl -s 127.0.0.1:9100/metrics | grep fulcrum_             # Prometheus metrics
    curl -s 127.0.0.1:9100/api/v1/services                     # services, servers, weights

  Kill one backend (pids above) and curl again: no request fails. Ctrl-C stops the demo.
`);
}, 1500).unref();

async function waitForPorts(ports, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  const open = (port) =>
    new Promise((resolve) => {
      const c = createConnection(port, '127.0.0.1');
      c.on('connect', () => (c.destroy(), resolve(true)));
      c.on('error', () => resolve(false));
    });
  for (const port of ports) {
    while (!(await open(port))) {
      if (Date.now() > deadline) {
        console.error(`backend on port ${port} did not start`);
        stopAll();
        process.exit(1);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
