// Boots a kernel with the built-in plugins, serves one connection, and lists every metric
// that got registered: the source of docs/metrics.md and of the test that keeps it honest.
import { connect, createServer } from 'node:net';
import { createKernel } from '@fulcrum/kernel';
import socket from '@fulcrum/dataplane-socket';
import wrr from '@fulcrum/scheduler-wrr';
import passive from '@fulcrum/healthcheck-passive';
import http from '@fulcrum/healthcheck-http';
import tcp from '@fulcrum/healthcheck-tcp';
import script from '@fulcrum/healthcheck-script';
import { Notifier, createLogger } from '@fulcrum/fulcrum';
import { PassThrough } from 'node:stream';

const listen = (server) => new Promise((r) => server.listen(0, '127.0.0.1', () => r(server.address().port)));

export async function collectMetrics() {
  // A TCP check closes its probe with the greeting unread: the backend sees a reset.
  const backend = createServer((c) => c.on('error', () => {}).end('ok'));
  const backendPort = await listen(backend);
  const probe = createServer();
  const vip = await listen(probe);
  await new Promise((r) => probe.close(r));

  const kernel = createKernel({ plugins: [socket, wrr, passive, http, tcp, script] });
  const notifier = new Notifier(kernel, createLogger('json', 'silent', new PassThrough()));
  await kernel.apply({
    dataplane: 'socket',
    services: [
      {
        name: 'web',
        listen: `127.0.0.1:${vip}`,
        scheduler: 'wrr',
        healthChecks: ['passive', { name: 'tcp', options: { interval: '50ms', warmup: 0 } }],
        realServers: [{ address: `127.0.0.1:${backendPort}` }],
      },
    ],
  });
  await new Promise((resolve) => {
    const c = connect(vip, '127.0.0.1');
    c.on('data', () => {})
      .on('close', resolve)
      .on('error', resolve);
  });
  await new Promise((r) => setTimeout(r, 200));
  const registry = kernel.metrics.registry;
  const metrics = (await registry.getMetricsAsJSON()).map((m) => ({
    name: m.name,
    type: m.type,
    help: m.help,
    labels: [...(registry.getSingleMetric(m.name).labelNames ?? [])],
  }));
  await notifier.close();
  await kernel.close();
  await new Promise((r) => backend.close(r));
  return metrics.sort((a, b) => a.name.localeCompare(b.name));
}
