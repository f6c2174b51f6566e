// A process that runs the dpdk dataplane from the built package (EAL initialises once per
// process, so every EAL test gets its own). Driven by the test through stdin/stdout:
// argv[2] = JSON { options, services }; prints "ready <json>" once serving, then obeys
// one command per line: exit, throw, stop, counters, wait.
import { compileOptionsSchema, EventBus, MetricsRegistry, silentLogger, systemClock } from '@fulcrum/kernel';
import { dpdkDataplane } from '@fulcrum/dataplane-dpdk';
import { createInterface } from 'node:readline';

const { options, services } = JSON.parse(process.argv[2]);
const validate = compileOptionsSchema(dpdkDataplane.optionsSchema);
if (!validate(options)) throw new Error(JSON.stringify(validate.errors));
const events = new EventBus();
const signals = [];
events.on('health:signal', (s) => signals.push(s));
const metrics = new MetricsRegistry();
const ctx = {
  kernelVersion: '0.1.0',
  plugin: { kind: 'dataplane', name: 'dpdk' },
  configPath: 'dataplane',
  logger: silentLogger,
  metrics,
  events,
  clock: systemClock,
};
const dp = dpdkDataplane.create(ctx, options);
const t0 = Date.now();
try {
  await dp.start();
} catch (e) {
  process.stdout.write(`failed ${JSON.stringify({ code: e.code, message: e.message })}\n`);
  process.exit(3);
}
await dp.apply({ added: services, updated: [], removed: [] });
process.stdout.write(`ready ${JSON.stringify({ startMs: Date.now() - t0 })}\n`);

const rl = createInterface({ input: process.stdin });
rl.on('line', async (cmd) => {
  if (cmd === 'exit') process.exit(0);
  if (cmd === 'throw')
    setTimeout(() => {
      throw new Error('uncaught on purpose');
    });
  if (cmd === 'stop') {
    await dp.stop();
    rl.close();
    process.stdout.write('stopped\n');
  }
  if (cmd === 'counters') {
    await new Promise((r) => setTimeout(r, 1100)); // metrics are collected every second
    process.stdout.write(
      `counters ${JSON.stringify({ metrics: await metrics.text(), signals, services: dp.services() })}\n`,
    );
  }
});
