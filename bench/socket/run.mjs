// Socket dataplane benchmark (issue 4): the same load, on the same machine, through Fulcrum's
// socket dataplane, HAProxy (mode tcp), nginx `stream`, and a plain Node pipe() proxy, in front
// of the same backends (nginx answering "ok" on three ports; an iperf3 server).
//
//   node bench/socket/run.mjs [--seconds 10] [--rounds 3] [--quick] [--only fulcrum,haproxy]
//                             [--tests rps,cps,iperf1,iperf8]
//                             [--fulcrum-option key=json]… [--variant name:key=json,key=json]…
//                             [--no-install]
//
// Measures requests/s with keep-alive and new connections/s (wrk, `Connection: close`), p99
// latency of both, bulk throughput (iperf3, 1 and 8 streams), and the CPU each balancer used
// (its whole process tree, from /proc) per 1,000 requests or per GB; with each run, how long
// the balancer's threads waited for a core (schedstat) and how much other load the machine
// carried meanwhile (/proc/stat less this benchmark's processes), to tell a slow balancer
// from a busy machine. Rounds interleave the
// peers so that other load on a shared machine hits them alike; figures are medians. Prints
// every figure and the Fulcrum/HAProxy ratios (medians, and the lowest and highest round);
// writes bench/results/socket-<time>.json, a PNG
// chart next to it, and socket-latest.{json,png}. Installs what it needs with apt-get when
// run as root (haproxy, nginx, libnginx-mod-stream, wrk, iperf3, librsvg2-bin).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { machineCpu, treeCpu, treeWait } from '../lib/proc.mjs';
import { argv, ensureTools, flag, log, opt } from '../lib/tools.mjs';
import { chart } from './chart.mjs';

const root = new URL('../..', import.meta.url).pathname;
const here = new URL('.', import.meta.url).pathname;
const quick = flag('--quick');
const SECONDS = Number(opt('--seconds', quick ? 3 : 10));
const ROUNDS = Number(opt('--rounds', quick ? 1 : 3));
const CONNECTIONS = Number(opt('--connections', 64));
const CORES = cpus().length;
const THREADS = Number(opt('--threads', CORES));
const fulcrumOptions = argv.flatMap((a, i) => (a === '--fulcrum-option' ? ['--option', argv[i + 1]] : []));
// Further Fulcrum peers with other dataplane options, to decide from measurements:
// `--variant nagle:noDelay=false` runs a peer "fulcrum-nagle" beside "fulcrum";
// `--variant 'js:relay="js"'` the JavaScript relay beside the native one (decision 0005).
const variants = argv.flatMap((a, i) => {
  if (a !== '--variant') return [];
  const [name, spec = ''] = argv[i + 1].split(':');
  return [
    {
      name: `fulcrum-${name}`,
      options: spec
        .split(',')
        .filter(Boolean)
        .flatMap((kv) => ['--option', kv]),
    },
  ];
});

// ---- tools -----------------------------------------------------------------------------------

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

// The commands the benchmark runs, with the Debian package of each; nginx's stream module is a
// package of its own.
const TOOLS = [
  ['haproxy', 'haproxy'],
  ['nginx', 'nginx'],
  ['wrk', 'wrk'],
  ['iperf3', 'iperf3'],
  ['rsvg-convert', 'librsvg2-bin'],
];

function ensureBuilt() {
  log('building the packages the benchmark loads (tsc -b)');
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  execFileSync(process.execPath, [tsc, '-b', 'packages/dataplane-socket', 'packages/scheduler-rr'], {
    cwd: root,
    stdio: 'inherit',
  });
}

const version = (cmd, args, re) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return (re.exec(`${r.stdout}${r.stderr}`) ?? [])[1] ?? 'unknown';
};

// ---- processes -------------------------------------------------------------------------------

const children = [];
function start(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts });
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.on('exit', (code, signal) => {
    if (!stopping) log(`${name} exited (${signal ?? code}): ${stderr.trim()}`);
  });
  children.push(child);
  return child;
}
let stopping = false;
function stopAll() {
  stopping = true;
  for (const c of children)
    if (c.exitCode === null && c.signalCode === null && c.pid) process.kill(c.pid, 'SIGTERM');
}
process.on('exit', stopAll);
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

async function waitPort(port, what) {
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((r) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} is not listening on ${port}`);
}

// ---- load generators ---------------------------------------------------------------------------

function wrk(port, close) {
  const args = ['-t', String(THREADS), '-c', String(CONNECTIONS), '-d', `${SECONDS}s`, '--latency'];
  if (close) args.push('-H', 'Connection: close');
  const out = spawnSync('wrk', [...args, `http://127.0.0.1:${port}/`], { encoding: 'utf8' }).stdout;
  const num = (re) => Number((re.exec(out) ?? [])[1] ?? NaN);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(out);
  const unit = { us: 0.001, ms: 1, s: 1000 };
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  return {
    perSecond: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p99Ms: p99 ? Number(p99[1]) * unit[p99[2]] : NaN,
    errors: errors ? errors.slice(1).reduce((n, v) => n + Number(v), 0) : 0,
    non2xx: num(/Non-2xx or 3xx responses: (\d+)/) || 0,
  };
}

function iperf(port, streams) {
  const r = spawnSync(
    'iperf3',
    ['-c', '127.0.0.1', '-p', String(port), '-t', String(SECONDS), '-P', String(streams), '-J'],
    { encoding: 'utf8' },
  );
  try {
    const j = JSON.parse(r.stdout);
    return {
      gbps: j.end.sum_received.bits_per_second / 1e9,
      bytes: j.end.sum_received.bytes,
      ...(j.error ? { error: j.error } : {}),
    };
  } catch {
    return { gbps: NaN, bytes: 0, error: r.stderr || r.stdout };
  }
}

// ---- the run ---------------------------------------------------------------------------------

ensureTools(TOOLS, existsSync(STREAM_MODULE) ? [] : ['libnginx-mod-stream']);
ensureBuilt();
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bench-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

const web = [await freePort(), await freePort(), await freePort()];
const iperfPort = await freePort();
writeFileSync(
  join(dir, 'backend.conf'),
  `worker_processes 1;
daemon off;
pid ${dir}/backend.pid;
error_log stderr error;
events { worker_connections 16384; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
${web.map((p) => `    listen 127.0.0.1:${p} backlog=4096;`).join('\n')}
    location / { return 200 "ok\\n"; }
  }
}
`,
);
start('backends (nginx)', 'nginx', ['-c', join(dir, 'backend.conf'), '-e', 'stderr']);
start('iperf3 server', 'iperf3', ['-s', '-p', String(iperfPort)]);
for (const p of [...web, iperfPort]) await waitPort(p, 'a backend');

const webList = web.join(',');
const peers = [];
const addPeer = async (name, launch) => {
  const only = opt('--only');
  if (only && !only.split(',').includes(name)) return;
  const ports = { web: await freePort(), iperf: await freePort() };
  const child = launch(ports);
  await waitPort(ports.web, name);
  await waitPort(ports.iperf, name);
  peers.push({ name, ports, pid: child.pid });
};

await addPeer('fulcrum', (p) =>
  start(
    'fulcrum',
    process.execPath,
    [
      join(here, 'fulcrum-lb.mjs'),
      ...fulcrumOptions,
      String(p.web),
      webList,
      String(p.iperf),
      String(iperfPort),
    ],
    { cwd: here },
  ),
);
for (const v of variants) {
  await addPeer(v.name, (p) =>
    start(
      v.name,
      process.execPath,
      [
        join(here, 'fulcrum-lb.mjs'),
        ...fulcrumOptions,
        ...v.options,
        String(p.web),
        webList,
        String(p.iperf),
        String(iperfPort),
      ],
      {
        cwd: here,
      },
    ),
  );
}
await addPeer('haproxy', (p) => {
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global
  maxconn 8000
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
frontend web
  bind 127.0.0.1:${p.web}
  default_backend web
backend web
  balance roundrobin
${web.map((w, i) => `  server s${i} 127.0.0.1:${w}`).join('\n')}
frontend iperf
  bind 127.0.0.1:${p.iperf}
  default_backend iperf
backend iperf
  server iperf 127.0.0.1:${iperfPort}
`,
  );
  return start('haproxy', 'haproxy', ['-f', cfg, '-db']);
});
await addPeer('nginx', (p) => {
  const cfg = join(dir, 'stream.conf');
  writeFileSync(
    cfg,
    `load_module ${STREAM_MODULE};
worker_processes auto;
daemon off;
pid ${dir}/stream.pid;
error_log stderr error;
events { worker_connections 8192; }
stream {
  upstream web { ${web.map((w) => `server 127.0.0.1:${w};`).join(' ')} }
  upstream iperf { server 127.0.0.1:${iperfPort}; }
  server { listen 127.0.0.1:${p.web} backlog=4096; proxy_pass web; }
  server { listen 127.0.0.1:${p.iperf}; proxy_pass iperf; }
}
`,
  );
  return start('nginx stream', 'nginx', ['-c', cfg, '-e', 'stderr']);
});
await addPeer('node-pipe', (p) =>
  start('node pipe()', process.execPath, [
    join(here, 'pipe-proxy.mjs'),
    String(p.web),
    webList,
    String(p.iperf),
    String(iperfPort),
  ]),
);

const ALL_TESTS = [
  { id: 'rps', label: 'requests/s, keep-alive', run: (p) => wrk(p.ports.web, false) },
  { id: 'cps', label: 'new connections/s', run: (p) => wrk(p.ports.web, true) },
  { id: 'iperf1', label: 'throughput, 1 stream', run: (p) => iperf(p.ports.iperf, 1) },
  { id: 'iperf8', label: 'throughput, 8 streams', run: (p) => iperf(p.ports.iperf, 8) },
];
// `--tests cps` measures new connections/s alone (a quicker run when that is what changed).
const only = opt('--tests')?.split(',');
const TESTS = only ? ALL_TESTS.filter((t) => only.includes(t.id)) : ALL_TESTS;
if (TESTS.length === 0) {
  log(`--tests: none of ${only.join(',')} (known: ${ALL_TESTS.map((t) => t.id).join(',')})`);
  process.exit(1);
}

const loadStart = loadavg();
const runs = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const test of TESTS) {
    // A different peer goes first each round.
    const order = peers.map((_, i) => peers[(i + round) % peers.length]);
    for (const peer of order) {
      const cpu0 = treeCpu(peer.pid);
      const wait0 = treeWait(peer.pid);
      const machine0 = machineCpu();
      const t0 = performance.now();
      const result = test.run(peer);
      const seconds = (performance.now() - t0) / 1000;
      const machine1 = machineCpu();
      const cpuSeconds = treeCpu(peer.pid) - cpu0;
      const waitSeconds = treeWait(peer.pid) - wait0;
      const otherCores = Math.max(
        0,
        (machine1.busy - machine0.busy - (machine1.ours - machine0.ours)) / seconds,
      );
      const units = test.id.startsWith('iperf') ? result.bytes / 1e9 : result.requests / 1000;
      runs.push({
        round,
        test: test.id,
        peer: peer.name,
        ...result,
        cpuSeconds,
        cpuPerUnit: cpuSeconds / units,
        waitPerUnit: waitSeconds / units,
        otherCores,
      });
      const figure = test.id.startsWith('iperf')
        ? `${result.gbps.toFixed(2)} Gbit/s`
        : `${Math.round(result.perSecond)}/s p99 ${result.p99Ms} ms`;
      log(
        `round ${round + 1}/${ROUNDS} ${test.id.padEnd(6)} ${peer.name.padEnd(9)} ${figure}, cpu ${cpuSeconds.toFixed(1)} s, waiting for a core ${waitSeconds.toFixed(1)} s, other load ${otherCores.toFixed(2)} cores${result.errors ? `, ${result.errors} socket errors` : ''}`,
      );
    }
  }
}
const loadEnd = loadavg();

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = {};
for (const peer of peers) {
  const of = (test, key) =>
    median(runs.filter((r) => r.peer === peer.name && r.test === test).map((r) => r[key]));
  summary[peer.name] = {
    rps: of('rps', 'perSecond'),
    rpsP99Ms: of('rps', 'p99Ms'),
    rpsCpuMsPer1k: of('rps', 'cpuPerUnit') * 1000,
    cps: of('cps', 'perSecond'),
    cpsP99Ms: of('cps', 'p99Ms'),
    cpsCpuMsPer1k: of('cps', 'cpuPerUnit') * 1000,
    cpsWaitMsPer1k: of('cps', 'waitPerUnit') * 1000,
    iperf1Gbps: of('iperf1', 'gbps'),
    iperf8Gbps: of('iperf8', 'gbps'),
    iperfCpuSecPerGB: of('iperf8', 'cpuPerUnit'),
  };
}
const ratio = (a, b, invert = false) => (invert ? b / a : a / b);
const ratios = {};
if (summary.haproxy) {
  for (const peer of Object.keys(summary)) {
    const s = summary[peer];
    const h = summary.haproxy;
    ratios[peer] = {
      rps: ratio(s.rps, h.rps),
      cps: ratio(s.cps, h.cps),
      // p99: HAProxy's over ours, so that >= 1 means "as good or better", like the others.
      rpsP99: ratio(s.rpsP99Ms, h.rpsP99Ms, true),
      cpsP99: ratio(s.cpsP99Ms, h.cpsP99Ms, true),
      iperf1: ratio(s.iperf1Gbps, h.iperf1Gbps),
      iperf8: ratio(s.iperf8Gbps, h.iperf8Gbps),
    };
  }
}

// The same ratios round by round (each peer against HAProxy in the same round): how far
// apart the rounds are says how much a median of them can be trusted.
const FIGURES = [
  ['rps', 'rps', 'perSecond', false, 'requests/s'],
  ['cps', 'cps', 'perSecond', false, 'connections/s'],
  ['rpsP99', 'rps', 'p99Ms', true, 'p99 (keep-alive)'],
  ['cpsP99', 'cps', 'p99Ms', true, 'p99 (new conn)'],
  ['iperf1', 'iperf1', 'gbps', false, 'throughput x1'],
  ['iperf8', 'iperf8', 'gbps', false, 'throughput x8'],
];
const ratiosPerRound = {};
if (summary.haproxy) {
  for (const peer of Object.keys(summary)) {
    if (peer === 'haproxy') continue;
    const of = (round, test, who) => runs.find((r) => r.round === round && r.test === test && r.peer === who);
    ratiosPerRound[peer] = {};
    for (const [key, test, field, invert] of FIGURES) {
      const xs = [];
      for (let round = 0; round < ROUNDS; round++) {
        const [a, h] = [of(round, test, peer), of(round, test, 'haproxy')];
        if (a && h) xs.push(ratio(a[field], h[field], invert));
      }
      if (xs.some((x) => Number.isFinite(x))) ratiosPerRound[peer][key] = xs;
    }
  }
}

const fmt = (v, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : '-');
const rows = [
  ['', 'req/s ka', 'p99 ms', 'cpu ms/1k', 'conn/s', 'p99 ms', 'cpu ms/1k', 'Gb/s x1', 'Gb/s x8', 'cpu s/GB'],
  ...Object.entries(summary).map(([name, s]) => [
    name,
    fmt(s.rps),
    fmt(s.rpsP99Ms, 2),
    fmt(s.rpsCpuMsPer1k, 1),
    fmt(s.cps),
    fmt(s.cpsP99Ms, 2),
    fmt(s.cpsCpuMsPer1k, 1),
    fmt(s.iperf1Gbps, 2),
    fmt(s.iperf8Gbps, 2),
    fmt(s.iperfCpuSecPerGB, 2),
  ]),
];
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
console.log(
  `\nsocket dataplane benchmark: ${CORES} cores, ${ROUNDS} round(s) of ${SECONDS} s, wrk -t${THREADS} -c${CONNECTIONS}; medians`,
);
for (const r of rows)
  console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
if (ratios.fulcrum) {
  const r = ratios.fulcrum;
  console.log(
    `\nFulcrum/HAProxy: requests/s ${fmt(r.rps, 2)}, connections/s ${fmt(r.cps, 2)}, p99 (keep-alive) ${fmt(r.rpsP99, 2)}, p99 (new conn) ${fmt(r.cpsP99, 2)}, throughput x1 ${fmt(r.iperf1, 2)}, x8 ${fmt(r.iperf8, 2)}`,
  );
  const spread = Object.entries(ratiosPerRound.fulcrum)
    .map(([key, xs]) => {
      const ok = xs.filter((x) => Number.isFinite(x));
      const label = FIGURES.find((f) => f[0] === key)[4];
      return `${label} ${fmt(Math.min(...ok), 2)}–${fmt(Math.max(...ok), 2)}`;
    })
    .join(', ');
  if (ROUNDS > 1) console.log(`per round, lowest–highest: ${spread}`);
  if (ratios['node-pipe'])
    console.log(
      `node pipe()/HAProxy: requests/s ${fmt(ratios['node-pipe'].rps, 2)}, connections/s ${fmt(ratios['node-pipe'].cps, 2)}`,
    );
}
{
  const other = runs.map((r) => r.otherCores).sort((a, b) => a - b);
  console.log(
    `other load during the runs: median ${fmt(median(other), 2)} cores, max ${fmt(other.at(-1), 2)}; waiting for a core per 1,000 new connections: ${Object.entries(
      summary,
    )
      .map(([name, s]) => `${name} ${fmt(s.cpsWaitMsPer1k, 1)} ms`)
      .join(', ')}`,
  );
}
console.log(
  `load average: ${loadStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadEnd.map((l) => l.toFixed(2)).join(' ')} at end`,
);

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const results = join(root, 'bench', 'results');
mkdirSync(results, { recursive: true });
const report = {
  bench: 'socket',
  date: new Date().toISOString(),
  machine: {
    cores: CORES,
    cpu: cpus()[0]?.model,
    kernel: release(),
    loadavgStart: loadStart,
    loadavgEnd: loadEnd,
  },
  versions: {
    node: process.version,
    haproxy: version('haproxy', ['-v'], /version (\S+)/),
    nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
    wrk: version('wrk', ['-v'], /wrk (\S+)/),
    iperf3: version('iperf3', ['-v'], /iperf (\S+)/),
  },
  params: {
    seconds: SECONDS,
    rounds: ROUNDS,
    connections: CONNECTIONS,
    threads: THREADS,
    fulcrumOptions: fulcrumOptions.filter((_, i) => i % 2),
    variants: variants.map((v) => ({ name: v.name, options: v.options.filter((_, i) => i % 2) })),
  },
  summary,
  ratiosToHaproxy: ratios,
  ratiosPerRound,
  runs,
};
const json = JSON.stringify(report, null, 2) + '\n';
writeFileSync(join(results, `socket-${stamp}.json`), json);
writeFileSync(join(results, 'socket-latest.json'), json);
const svg = chart(report);
writeFileSync(join(dir, 'chart.svg'), svg);
for (const name of [`socket-${stamp}.png`, 'socket-latest.png']) {
  execFileSync('rsvg-convert', ['-f', 'png', '-o', join(results, name), join(dir, 'chart.svg')]);
}
log(`wrote bench/results/socket-${stamp}.json and .png (and socket-latest.*)`);
stopAll();
