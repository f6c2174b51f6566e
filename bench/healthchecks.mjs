// Health-check benchmark (issue 6): N servers × (tcp + http) checks at 1 s intervals against
// local servers, for a while; reports the CPU the checkers used, checks run, failures and
// event-loop delay. The servers run in a child process so their CPU is counted apart.
// Runs against the built packages (dist/): `npm run build && node bench/healthchecks.mjs`.
//   --servers N   (default 1000)   --seconds S (default 20)   --script   add a MISC_CHECK per server
//   --quick       100 servers for 5 s, for a smoke test of the script itself
// Writes bench/results/healthchecks-<time>.json (and healthchecks-latest.json).
import { fork } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const quick = process.argv.includes('--quick');
const SERVERS = arg('--servers', quick ? 100 : 1000);
const SECONDS = arg('--seconds', quick ? 5 : 20);
const WITH_SCRIPT = process.argv.includes('--script');

// ---- the servers: one child process, an HTTP and a TCP listener on every loopback address ----
if (process.argv[2] === '--serve') {
  const { createServer } = await import('node:http');
  const net = await import('node:net');
  const body = 'ok\n'.repeat(100);
  const http = createServer((_req, res) => res.end(body)).listen(0, '0.0.0.0');
  const tcp = net.createServer((s) => s.end()).listen(0, '0.0.0.0');
  await Promise.all([http, tcp].map((s) => new Promise((r) => s.once('listening', r))));
  process.send({ http: http.address().port, tcp: tcp.address().port });
  process.on('message', (m) => {
    if (m === 'cpu') process.send({ cpu: process.cpuUsage() });
  });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  let kernel, testkit, tcp, http, script;
  try {
    kernel = await import('@fulcrum/kernel');
    testkit = await import('@fulcrum/testkit');
    tcp = (await import('@fulcrum/healthcheck-tcp')).default;
    http = (await import('@fulcrum/healthcheck-http')).default;
    script = (await import('@fulcrum/healthcheck-script')).default;
  } catch (e) {
    console.error(`cannot load the built packages (${e.message}); run \`npm run build\` first`);
    process.exit(1);
  }
  const { MetricsRegistry, systemClock } = kernel;
  const { testContext, validOptions } = testkit;

  const child = fork(new URL(import.meta.url).pathname, ['--serve'], { stdio: 'inherit' });
  const ports = await new Promise((r) => child.once('message', r));
  const childCpu = () =>
    new Promise((r) => {
      child.once('message', (m) => r(m.cpu));
      child.send('cpu');
    });

  const metrics = new MetricsRegistry();
  const common = { interval: '1s', timeout: '1s', warmup: '1s' };
  const checkers = [
    [tcp, { ...common }, ports.tcp],
    [http, { ...common, path: '/health', status: [200] }, ports.http],
  ];
  if (WITH_SCRIPT) checkers.push([script, { ...common, timeout: '2s', path: '/bin/true' }, ports.tcp]);
  const instances = checkers.map(([plugin, options, port]) => [
    plugin.create(testContext(plugin, { clock: systemClock, metrics }), validOptions(plugin, options)),
    port,
  ]);

  const service = { name: 'bench', protocol: 'tcp', listen: { address: '127.0.0.1', port: 80, family: 4 } };
  let downs = 0;
  const reasons = new Map();
  const watches = [];
  const startCpu = process.cpuUsage();
  const startChild = await childCpu();
  const RESOLUTION_MS = 10;
  const loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  loop.enable();
  const t0 = performance.now();
  for (let i = 0; i < SERVERS; i++) {
    const address = `127.0.${Math.floor(i / 250)}.${(i % 250) + 1}`; // distinct servers on loopback
    for (const [inst, port] of instances) {
      watches.push(
        inst.watch({ service, server: `${address}:${port}`, address, port, weight: 1 }, (v) => {
          if (!v.up) {
            downs++;
            reasons.set(v.reason, (reasons.get(v.reason) ?? 0) + 1);
          }
        }),
      );
    }
  }
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const cpu = process.cpuUsage(startCpu);
  const elapsed = (performance.now() - t0) / 1000;
  loop.disable();
  for (const w of watches) w.stop();
  for (const [inst] of instances) inst.close?.();
  const endChild = await childCpu();
  child.disconnect();

  const counts = {};
  const json = await metrics.registry.getMetricsAsJSON();
  for (const m of json) {
    if (m.name === 'fulcrum_healthcheck_duration_seconds')
      for (const v of m.values)
        if (v.metricName?.endsWith('_count'))
          counts[`${v.labels.checker}:${v.labels.result}`] =
            (counts[`${v.labels.checker}:${v.labels.result}`] ?? 0) + v.value;
  }
  const lag = (ns) => Number(Math.max(0, ns / 1e6 - RESOLUTION_MS).toFixed(2));
  const checks = Object.values(counts).reduce((a, b) => a + b, 0);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const serverMs = (endChild.user + endChild.system - startChild.user - startChild.system) / 1000;
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model,
    servers: SERVERS,
    checkers: checkers.map(([p]) => p.name),
    seconds: Number(elapsed.toFixed(2)),
    checks,
    checksPerSecond: Number((checks / elapsed).toFixed(1)),
    byResult: counts,
    downVerdicts: downs,
    downReasons: Object.fromEntries([...reasons].slice(0, 10)),
    checkerCpuMs: Math.round(cpuMs),
    checkerCpuPercentOfOneCore: Number(((cpuMs / 1000 / elapsed) * 100).toFixed(1)),
    checkerCpuMicrosecondsPerCheck: Number(((cpuMs * 1000) / checks).toFixed(1)),
    serverCpuMs: Math.round(serverMs),
    // the histogram holds the sampling period plus the lag; the lag is what blocking costs
    eventLoopDelayMs: {
      p50: lag(loop.percentile(50)),
      p99: lag(loop.percentile(99)),
      max: lag(loop.max),
    },
  };
  console.log(
    `${SERVERS} servers × ${result.checkers.join('+')} at 1 s for ${result.seconds} s: ` +
      `${checks} checks (${result.checksPerSecond}/s), ${downs} down verdicts\n` +
      `checker CPU ${result.checkerCpuMs} ms = ${result.checkerCpuPercentOfOneCore}% of one core, ` +
      `${result.checkerCpuMicrosecondsPerCheck} µs per check; servers' CPU ${result.serverCpuMs} ms\n` +
      `event-loop delay p50 ${result.eventLoopDelayMs.p50} ms, p99 ${result.eventLoopDelayMs.p99} ms, max ${result.eventLoopDelayMs.max} ms`,
  );
  if (downs) console.log('down reasons:', result.downReasons);
  const dir = join(new URL('.', import.meta.url).pathname, 'results');
  mkdirSync(dir, { recursive: true });
  const text = JSON.stringify(result, null, 2) + '\n';
  writeFileSync(join(dir, `healthchecks-${result.date.replace(/[:.]/g, '-')}.json`), text);
  writeFileSync(join(dir, 'healthchecks-latest.json'), text);
}
