// A process that runs the kernel with the dpdk dataplane from the built packages, configured
// from YAML (EAL initialises once per process, so every EAL test gets its own). Driven by
// the test through stdin/stdout: argv[2] = the YAML; prints "ready <json>" once serving,
// prints "health <json>" on every server:health event, and obeys one command per line:
// exit, throw, stop, counters, workers, events, and `replace ["from","to"]` (edits the YAML
// and applies it: prints "applied").
import { createKernel, MetricsRegistry, parseConfigText } from '@fulcrum/kernel';
import { dpdkDataplane, loadNative } from '@fulcrum/dataplane-dpdk';
import passive from '@fulcrum/healthcheck-passive';
import { proxyProtocolPassthrough } from '@fulcrum/proxy-protocol';
import rr from '@fulcrum/scheduler-rr';
import { toaPassthrough } from '@fulcrum/toa';
import { createInterface } from 'node:readline';

let yaml = process.argv[2];
const metrics = new MetricsRegistry();
const kernel = createKernel({
  plugins: [dpdkDataplane, rr, passive, toaPassthrough, proxyProtocolPassthrough],
  metrics,
});
const signals = [];
kernel.events.on('health:signal', (s) => signals.push(s));
const connectionEvents = { opened: 0, closed: 0, clients: [] };
// Connections the dataplane ended (drain, expire) and failures, for the `events` command.
const ended = [];
const failed = [];
kernel.events.on('connection:opened', (e) => {
  connectionEvents.opened++;
  connectionEvents.clients.push(e.client);
});
kernel.events.on('connection:closed', (e) => {
  connectionEvents.closed++;
  if (e.reason)
    ended.push({ client: e.client, server: e.server, reason: e.reason, durationMs: e.durationMs });
});
kernel.events.on('connection:failed', (e) => failed.push(e));
const health = [];
kernel.events.on('server:health', (e) => {
  health.push({ server: e.server, health: e.health, reason: e.reason });
  process.stdout.write(`health ${JSON.stringify({ server: e.server, health: e.health })}\n`);
});
const t0 = Date.now();
try {
  await kernel.apply(parseConfigText(yaml, 'fulcrum.yaml'));
} catch (e) {
  const cause = e.cause ?? e;
  process.stdout.write(`failed ${JSON.stringify({ code: cause.code ?? e.code, message: e.message })}\n`);
  process.exit(3);
}
process.stdout.write(`ready ${JSON.stringify({ startMs: Date.now() - t0 })}\n`);

const rl = createInterface({ input: process.stdin });
rl.on('line', async (cmd) => {
  if (cmd === 'exit') process.exit(0);
  if (cmd === 'throw')
    setTimeout(() => {
      throw new Error('uncaught on purpose');
    });
  if (cmd === 'stop') {
    await kernel.close();
    rl.close();
    process.stdout.write('stopped\n');
  }
  if (cmd === 'workers') {
    // Per worker: the native counters (published every 100 ms), and the listing the
    // kernel's connections() gives.
    await new Promise((r) => setTimeout(r, 250));
    const native = loadNative();
    native.ealConnectionsRequest();
    for (const end = Date.now() + 2000; !native.ealConnectionsReady() && Date.now() < end;)
      await new Promise((r) => setTimeout(r, 1));
    const listing = native.ealConnectionsTake();
    const connections = await kernel.dataplane.connections();
    process.stdout.write(
      `workers ${JSON.stringify({ counters: native.ealWorkerCounters(), info: native.ealInfo(), listing, connections, connectionEvents })}\n`,
    );
  }
  if (cmd.startsWith('replace ')) {
    const [from, to] = JSON.parse(cmd.slice('replace '.length));
    if (!yaml.includes(from)) throw new Error(`replace: "${from}" is not in the config`);
    yaml = yaml.replace(from, to);
    await kernel.apply(parseConfigText(yaml, 'fulcrum.yaml'));
    process.stdout.write('applied\n');
  }
  if (cmd === 'events') {
    await new Promise((r) => setTimeout(r, 250)); // the workers hand events over every 100 ms
    process.stdout.write(`events ${JSON.stringify({ ended, failed, connectionEvents })}\n`);
  }
  if (cmd === 'counters') {
    await new Promise((r) => setTimeout(r, 1100)); // metrics are collected every second
    const services = kernel.dataplane.services();
    process.stdout.write(
      `counters ${JSON.stringify({ metrics: await metrics.text(), signals, services, health })}\n`,
    );
  }
});
