// DPDK dataplane forwarding benchmark (issue 8): on one veth setup, in one run, the same load
// through `dpdk-testpmd` mac-forwarding (the environment's limit: no lookup, no rewrite) and
// through Fulcrum's FULLNAT (the `fulcrum` daemon with the dpdk dataplane, from YAML), with
// the ratios Fulcrum/testpmd:
//   - packets/s: 64-byte UDP frames from a DPDK generator (testpmd txonly, pinned to the
//     other core) in the client namespace, counted where they arrive (the server veth);
//   - TCP throughput: iperf3, 1 and 4 streams;
//   - new connections/s: wrk with `Connection: close` against nginx;
//   - first, the forwarder alone with no kernel in the way: memif from a txonly generator in,
//     net_null out (`--no-memif` skips it).
// Both forwarders poll on CPU 0; the generator runs on CPU 1. Rounds alternate the two
// forwarders so other load on the machine hits them alike; figures are medians. Each round
// prints the other load the machine carried, and the run ends with a warning naming the
// rounds that shared it with more than a quarter of a core.
//
//   node bench/dpdk/forward.mjs [--pmd af_packet|af_xdp|both|none] [--seconds 5] [--rounds 3]
//                               [--quick] [--no-install]
//
// Needs root (namespaces, veth, AF_XDP) and the built packages (`npm run build`). Installs
// dpdk-dev (testpmd), iperf3, wrk and nginx with apt-get when missing. Writes
// bench/results/dpdk-forward-<time>.json and dpdk-forward-latest.json. The per-packet cost of
// the pipeline alone and the memory per connection are bench/dpdk/pipeline.mjs's.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { machineCpu } from '../lib/proc.mjs';
import { ensureTools, flag, log, median, opt } from '../lib/tools.mjs';

const root = new URL('../..', import.meta.url).pathname;
const quick = flag('--quick');
const SECONDS = Number(opt('--seconds', quick ? 3 : 5));
const ROUNDS = Number(opt('--rounds', quick ? 1 : 3));
const PMDS = (() => {
  const p = opt('--pmd', quick ? 'af_packet' : 'both');
  return p === 'both' ? ['af_packet', 'af_xdp'] : p === 'none' ? [] : [p];
})();

if (process.getuid?.() !== 0) {
  log('needs root: it creates network namespaces and veth pairs, and AF_XDP sockets');
  process.exit(1);
}
ensureTools([
  ['dpdk-testpmd', 'dpdk-dev'],
  ['iperf3', 'iperf3'],
  ['wrk', 'wrk'],
  ['nginx', 'nginx'],
  ['ethtool', 'ethtool'],
]);

const run = (cmd, ...args) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const id = `${process.pid % 100000}`;
const NS = { cli: `fbc${id}`, srv: `fbs${id}` };
const DEV = { wan: `fbw${id}`, lan: `fbl${id}`, wanPeer: `fbwp${id}`, lanPeer: `fblp${id}` };
const VIP = '10.1.0.100';
const ADMIN_PORT = 19100 + (process.pid % 500);
const SERVER = '10.2.0.2';
const work = mkdtempSync(join(tmpdir(), 'fulcrum-bench-dpdk-'));
const children = new Set();
const prefixes = [];

// ---- topology: cli 10.1.0.2 ── wan [forwarder] lan ── srv 10.2.0.2 --------------------------

const mac = (dev, ns) =>
  JSON.parse(run('ip', ...(ns ? ['-n', ns] : []), '-j', 'link', 'show', dev))[0].address;
const rxPackets = () =>
  JSON.parse(run('ip', '-n', NS.srv, '-s', '-j', 'link', 'show', DEV.lanPeer))[0].stats64.rx.packets;
let macs;

// testpmd answers no ARP: both namespaces get permanent entries for everything across the
// forwarder (the DPDK ports keep their veth's MAC). Fulcrum would answer them itself.
const neigh = (ns, dev, ip, lladdr) =>
  run('ip', '-n', ns, 'neigh', 'replace', ip, 'lladdr', lladdr, 'dev', dev, 'nud', 'permanent');
function clientRoutes() {
  run('ip', '-n', NS.cli, 'route', 'replace', 'default', 'via', '10.1.0.1');
  neigh(NS.cli, DEV.wanPeer, '10.1.0.1', macs.wan);
  neigh(NS.cli, DEV.wanPeer, VIP, macs.wan);
}

function setup() {
  run('ip', 'netns', 'add', NS.cli);
  run('ip', 'netns', 'add', NS.srv);
  for (const [own, peer, ns] of [
    [DEV.wan, DEV.wanPeer, NS.cli],
    [DEV.lan, DEV.lanPeer, NS.srv],
  ]) {
    run('ip', 'link', 'add', own, 'type', 'veth', 'peer', 'name', peer);
    run('ip', 'link', 'set', peer, 'netns', ns);
    run('ip', 'link', 'set', own, 'up');
    run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
    run('ip', '-n', ns, 'link', 'set', peer, 'up');
    // DPDK-NOTES: with TX checksum offload on, TCP segments leave with partial checksums.
    run('ip', 'netns', 'exec', ns, 'ethtool', '-K', peer, 'tx', 'off');
  }
  run('ip', '-n', NS.cli, 'addr', 'add', '10.1.0.2/24', 'dev', DEV.wanPeer);
  run('ip', '-n', NS.srv, 'addr', 'add', `${SERVER}/24`, 'dev', DEV.lanPeer);
  run('ip', '-n', NS.srv, 'route', 'add', 'default', 'via', '10.2.0.1');
  macs = {
    wan: mac(DEV.wan),
    lan: mac(DEV.lan),
    cli: mac(DEV.wanPeer, NS.cli),
    srv: mac(DEV.lanPeer, NS.srv),
  };
  clientRoutes();
  neigh(NS.srv, DEV.lanPeer, '10.2.0.1', macs.lan);
  for (const l of ['10.2.0.200', '10.2.0.201', '10.2.0.202']) neigh(NS.srv, DEV.lanPeer, l, macs.lan);
}

function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const ns of [NS.cli, NS.srv])
    try {
      run('ip', 'netns', 'del', ns);
    } catch {
      /* not made */
    }
  for (const dev of [DEV.wan, DEV.lan])
    try {
      run('ip', 'link', 'del', dev);
    } catch {
      /* gone with its peer */
    }
  for (const p of prefixes) rmSync(`/var/run/dpdk/${p}`, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    cleanup();
    process.exit(130);
  });

// ---- processes -----------------------------------------------------------------------------

/** Starts a process and resolves once a line matches `ready` (or rejects when it exits). */
function start(cmd, args, ready, name) {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const lines = [];
  const exited = new Promise((resolve) => child.once('exit', () => resolve()));
  const up = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${name}: not ready after 30 s:\n${lines.join('\n')}`)),
      30_000,
    );
    for (const stream of [child.stdout, child.stderr])
      createInterface({ input: stream }).on('line', (l) => {
        lines.push(l);
        if (lines.length > 200) lines.shift();
        if (ready.test(l)) {
          clearTimeout(timer);
          resolve();
        }
      });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited (${code ?? signal}):\n${lines.join('\n')}`));
    });
  });
  const stop = async (signal = 'SIGINT') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
    children.delete(child);
  };
  return { child, up, stop, lines };
}

const vdev = (pmd, n, iface) =>
  pmd === 'af_xdp'
    ? `net_af_xdp${n},iface=${iface},start_queue=0,queue_count=1`
    : `net_af_packet${n},iface=${iface}`;
const eal = (prefix) => {
  prefixes.push(prefix);
  return ['--no-pci', '--no-huge', '-m', '512', '--no-shconf', '--no-telemetry', '--file-prefix', prefix];
};

async function startTestpmd(pmd) {
  const p = start(
    'dpdk-testpmd',
    [
      '--lcores',
      '0@0,1@0', // the main lcore sleeps; the forwarding lcore polls on CPU 0, as Fulcrum's does
      ...eal(`fb${id}-fwd`),
      '--vdev',
      vdev(pmd, 0, DEV.wan),
      '--vdev',
      vdev(pmd, 1, DEV.lan),
      '--',
      '--total-num-mbufs=8192',
      '--forward-mode=mac',
      `--eth-peer=0,${macs.cli}`,
      `--eth-peer=1,${macs.srv}`,
      '--auto-start',
      '--stats-period',
      '1',
    ],
    /Port statistics|Start automatic packet forwarding/,
    'testpmd mac-fwd',
  );
  await p.up;
  return { ...p, udpTarget: SERVER, tcpTarget: SERVER, httpTarget: `${SERVER}:8080` };
}

// The memif variant: wan is a memif the generator connects to, lan a net_null that takes
// every frame (no kernel on either side), so what is measured is the forwarder itself.
const MEMIF = { sock: join(work, 'memif.sock'), wan: '02:fb:00:00:00:01', server: '02:fb:00:00:00:02' };
const memifPorts = (role) => [
  `net_memif0,role=${role},socket=${MEMIF.sock},id=0${role === 'server' ? `,mac=${MEMIF.wan}` : ''}`,
  'net_null0,no-rx=1',
];

async function startFulcrum(pmd) {
  const [wanVdev, lanVdev] =
    pmd === 'memif' ? memifPorts('server') : [vdev(pmd, 0, DEV.wan), vdev(pmd, 1, DEV.lan)];
  const yaml = `
dataplane:
  name: dpdk
  options:
    eal: ['-l', '0', ${eal(`fb${id}-fulcrum`)
      .map((a) => `'${a}'`)
      .join(', ')}]
    ports:
      - { name: wan, vdev: '${wanVdev}', addresses: [10.1.0.1/24] }
      - { name: lan, vdev: '${lanVdev}', addresses: [10.2.0.1/24] }
    neighbors:
      - { port: wan, address: 10.1.0.2, mac: '${pmd === 'memif' ? MEMIF.wan : macs.cli}' }
      - { port: lan, address: ${SERVER}, mac: '${pmd === 'memif' ? MEMIF.server : macs.srv}' }
    maxConnections: 262144
admin:
  listen: 127.0.0.1:${ADMIN_PORT}
services:
  - { name: udp, protocol: udp, listen: '${VIP}:9000', scheduler: rr, localAddresses: [10.2.0.200],
      realServers: [{ address: '${SERVER}:9000' }] }
  - { name: iperf, protocol: tcp, listen: '${VIP}:5201', scheduler: rr, localAddresses: [10.2.0.200],
      realServers: [{ address: '${SERVER}:5201' }] }
  - { name: http, protocol: tcp, listen: '${VIP}:80', scheduler: rr, localAddresses: [10.2.0.201, 10.2.0.202],
      realServers: [{ address: '${SERVER}:8080' }] }
`;
  const file = join(work, 'fulcrum.yaml');
  writeFileSync(file, yaml);
  const p = start(
    process.execPath,
    [join(root, 'packages/fulcrum/dist/bin.js'), 'run', file, '--log-format', 'json'],
    /"event":"started"/,
    'fulcrum',
  );
  await p.up;
  // Where Fulcrum lost packets, by reason (its counters and the ports' own).
  const drops = async () => {
    const text = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text();
    const found = {};
    for (const m of text.matchAll(/^fulcrum_dpdk_(?:port_)?drops_total\{([^}]*)\} (\d+)/gm))
      if (Number(m[2]) > 0) found[m[1].replace(/"/g, '')] = Number(m[2]);
    return found;
  };
  const lanTx = async () => {
    const text = await (await fetch(`http://127.0.0.1:${ADMIN_PORT}/metrics`)).text();
    return Number(
      /^fulcrum_dpdk_port_packets_total\{port="lan",direction="tx"\} (\d+)/m.exec(text)?.[1] ?? NaN,
    );
  };
  return { ...p, udpTarget: VIP, tcpTarget: VIP, httpTarget: VIP, drops, lanTx };
}

/** testpmd mac-forwarding memif → net_null, the baseline of the memif measurement. */
async function startTestpmdMemif() {
  const [wan, lan] = memifPorts('server');
  const p = start(
    'dpdk-testpmd',
    [
      '--lcores',
      '0@0,1@0',
      ...eal(`fb${id}-mfwd`),
      '--vdev',
      wan,
      '--vdev',
      lan,
      '--',
      '--total-num-mbufs=16384',
      '--forward-mode=mac',
      `--eth-peer=1,${MEMIF.server}`,
      '--auto-start',
      '--stats-period',
      '1',
    ],
    /Port statistics|Start automatic packet forwarding/,
    'testpmd mac-fwd (memif)',
  );
  await p.up;
  return p;
}

/** Per port, the Tx-pps testpmd printed every second (its periodic statistics blocks). */
function txPps(lines) {
  const byPort = {};
  let port;
  for (const l of lines) {
    const m = /NIC statistics for port (\d+)/.exec(l);
    if (m) port = Number(m[1]);
    const t = /Tx-pps:\s+(\d+)/.exec(l);
    if (t && port !== undefined) (byPort[port] ??= []).push(Number(t[1]));
  }
  return byPort;
}

/**
 * taskset's arguments for the generator: testpmd txonly on CPU 1 sending 64-byte UDP
 * datagrams from 10.1.0.2 to `target` through `vdev`, toward the MAC `peer`.
 */
function generator(prefix, vdev, mbufs, target, peer) {
  return [
    '-c',
    '1',
    'dpdk-testpmd',
    '--lcores',
    '0@1,1@1',
    ...eal(prefix),
    '--vdev',
    vdev,
    '--',
    `--total-num-mbufs=${mbufs}`,
    '--forward-mode=txonly',
    '--txpkts=64',
    `--tx-ip=10.1.0.2,${target}`,
    '--tx-udp=4000,9000',
    `--eth-peer=0,${peer}`,
    '--auto-start',
    '--stats-period',
    '1',
  ];
}

/**
 * The forwarder alone, no kernel in the way: 64-byte UDP frames from a testpmd txonly
 * generator (CPU 1) over memif into the forwarder (CPU 0), out to net_null. Forwarded/s
 * from the forwarder's own counters; when it forwards less than it is sent, 1 s / rate is
 * its cost per packet on one core.
 */
async function memifRound(name) {
  const fwd = name === 'testpmd' ? await startTestpmdMemif() : await startFulcrum('memif');
  try {
    const [wan] = memifPorts('client');
    const gen = start(
      'taskset',
      generator(`fb${id}-mgen`, wan, 16384, name === 'testpmd' ? SERVER : VIP, MEMIF.wan),
      /Tx-pps:\s+[1-9]/,
      'memif generator',
    );
    await gen.up;
    const before = name === 'fulcrum' ? await fwd.lanTx() : 0;
    const t0 = process.hrtime.bigint();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const after = name === 'fulcrum' ? await fwd.lanTx() : 0;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const fwdLines = [...fwd.lines]; // testpmd's statistics while the generator ran
    await gen.stop('SIGINT');
    const generated = median((txPps(gen.lines)[0] ?? []).slice(1, -1));
    const forwarded =
      name === 'fulcrum'
        ? (after - before) / seconds
        : median((txPps(fwdLines)[1] ?? []).slice(-Math.max(1, SECONDS - 1)));
    log(
      `  memif ${name}: ${(forwarded / 1e6).toFixed(2)} Mpps forwarded of ${(generated / 1e6).toFixed(2)} Mpps sent`,
    );
    return { forwarded, generated };
  } finally {
    await fwd.stop(name === 'fulcrum' ? 'SIGTERM' : 'SIGINT');
  }
}

function startServers() {
  const conf = join(work, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes 1;
master_process off; # one process: killing it leaves no orphaned worker behind
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  server { listen ${SERVER}:8080 reuseport backlog=4096; keepalive_timeout 0; location / { return 200 "ok\\n"; } }
}
`,
  );
  const nginx = start(
    'ip',
    ['netns', 'exec', NS.srv, 'nginx', '-c', conf, '-e', `${work}/nginx-error.log`],
    /^$/,
    'nginx',
  );
  nginx.up.catch(() => {}); // nginx prints nothing when it starts; readiness is checked below
  const iperf = start(
    'ip',
    ['netns', 'exec', NS.srv, 'iperf3', '-s', '-B', SERVER, '--forceflush'],
    /listening/i,
    'iperf3 -s',
  );
  return Promise.all([iperf.up, waitFor(() => tcpOpen(NS.srv, SERVER, 8080), 'nginx')]);
}

const tcpOpen = (ns, host, port) => {
  try {
    run('ip', 'netns', 'exec', ns, 'bash', '-c', `exec 3<>/dev/tcp/${host}/${port}`);
    return true;
  } catch {
    return false;
  }
};
async function waitFor(check, what) {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up`);
}

// ---- loads ---------------------------------------------------------------------------------

/** 64-byte UDP frames from testpmd txonly in cli, one flow; forwarded = what srv's veth got. */
async function packetsPerSecond(target) {
  const gen = start(
    'ip',
    [
      'netns',
      'exec',
      NS.cli,
      'taskset',
      ...generator(`fb${id}-gen`, `net_af_packet0,iface=${DEV.wanPeer}`, 8192, target, macs.wan),
    ],
    /Tx-pps:\s+[1-9]/,
    'generator',
  );
  await gen.up;
  const before = rxPackets();
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const after = rxPackets();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await gen.stop('SIGINT');
  // af_packet's port stop takes the interface down, which flushes its routes and neighbours:
  // the client's own traffic needs them back.
  run('ip', '-n', NS.cli, 'link', 'set', DEV.wanPeer, 'up');
  clientRoutes();
  const sent = [...gen.lines.join('\n').matchAll(/Tx-pps:\s+(\d+)/g)].map((m) => Number(m[1])).slice(1, -1);
  return { forwarded: (after - before) / seconds, generated: median(sent) };
}

function throughput(target, streams) {
  const out = run(
    'ip',
    ...['netns', 'exec', NS.cli, 'iperf3', '-c', target, '-t', String(SECONDS), '-P', String(streams), '-J'],
  );
  const r = JSON.parse(out);
  if (!r.end?.sum_received) throw new Error(`iperf3 to ${target}: ${r.error ?? out.slice(0, 300)}`);
  return r.end.sum_received.bits_per_second / 1e9;
}

function connectionsPerSecond(target) {
  const out = run(
    'ip',
    'netns',
    'exec',
    NS.cli,
    'wrk',
    '-t1',
    '-c32',
    `-d${SECONDS}s`,
    '-H',
    'Connection: close',
    `http://${target}/`,
  );
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? 'none';
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { rate, errors, non2xx };
}

async function measure(name, pmd, startForwarder) {
  log(`${name} on ${pmd}`);
  const fwd = await startForwarder(pmd);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const pps = await packetsPerSecond(fwd.udpTarget);
    const tcp1 = throughput(fwd.tcpTarget, 1);
    const tcp4 = throughput(fwd.tcpTarget, 4);
    const cps = connectionsPerSecond(fwd.httpTarget);
    const drops = fwd.drops ? await fwd.drops() : undefined;
    if (drops && Object.keys(drops).length) log(`  fulcrum drops: ${JSON.stringify(drops)}`);
    log(
      `  ${(pps.forwarded / 1e3).toFixed(0)} kpps forwarded of ${(pps.generated / 1e3).toFixed(0)} kpps sent; ` +
        `TCP ${tcp1.toFixed(2)} / ${tcp4.toFixed(2)} Gbit/s (1 / 4 streams); ${cps.rate.toFixed(0)} conn/s ` +
        `(socket errors: ${cps.errors}, non-2xx: ${cps.non2xx})`,
    );
    return {
      pps: pps.forwarded,
      generated: pps.generated,
      tcp1,
      tcp4,
      cps: cps.rate,
      cpsErrors: cps.errors,
      drops,
    };
  } finally {
    await fwd.stop(name === 'fulcrum' ? 'SIGTERM' : 'SIGINT');
  }
}

/**
 * Runs one round, and adds the other load the machine carried meanwhile (cores busy beyond
 * this benchmark's processes, from /proc): a round beside other jobs measures the machine,
 * not the forwarders. A quiet machine shows 0.01–0.06 core here, memif and veth alike.
 */
const DISTURBED = 0.25;
async function withOtherLoad(round) {
  const m0 = machineCpu();
  const t0 = process.hrtime.bigint();
  const r = await round();
  const m1 = machineCpu();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const otherCores = Math.max(0, (m1.busy - m0.busy - (m1.ours - m0.ours)) / seconds);
  log(`  other load ${otherCores.toFixed(2)} cores${otherCores > DISTURBED ? ': DISTURBED' : ''}`);
  return { ...r, otherCores };
}

// ---- run -----------------------------------------------------------------------------------

const results = {};
if (!flag('--no-memif')) {
  const rounds = { testpmd: [], fulcrum: [] };
  for (let r = 0; r < ROUNDS; r++)
    for (const name of r % 2 ? ['fulcrum', 'testpmd'] : ['testpmd', 'fulcrum'])
      rounds[name].push(await withOtherLoad(() => memifRound(name)));
  const med = (name) => median(rounds[name].map((x) => x.forwarded));
  results.memif = {
    rounds,
    medians: { testpmd: { pps: med('testpmd') }, fulcrum: { pps: med('fulcrum') } },
    ratios: { pps: med('fulcrum') / med('testpmd') },
    nsPerPacket: { testpmd: 1e9 / med('testpmd'), fulcrum: 1e9 / med('fulcrum') },
  };
}
setup();
await startServers();
for (const pmd of PMDS) {
  const rounds = { testpmd: [], fulcrum: [] };
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 ? ['fulcrum', 'testpmd'] : ['testpmd', 'fulcrum'];
    for (const name of order)
      rounds[name].push(
        await withOtherLoad(() => measure(name, pmd, name === 'testpmd' ? startTestpmd : startFulcrum)),
      );
  }
  const med = (name, key) => median(rounds[name].map((x) => x[key]));
  const keys = ['pps', 'tcp1', 'tcp4', 'cps'];
  results[pmd] = {
    rounds,
    medians: Object.fromEntries(
      ['testpmd', 'fulcrum'].map((n) => [n, Object.fromEntries(keys.map((k) => [k, med(n, k)]))]),
    ),
    ratios: Object.fromEntries(keys.map((k) => [k, med('fulcrum', k) / med('testpmd', k)])),
  };
}

const rows = [
  ['packets/s (64 B UDP)', 'pps', (v) => `${(v / 1e3).toFixed(0)} kpps`],
  ['TCP, 1 stream', 'tcp1', (v) => `${v.toFixed(2)} Gbit/s`],
  ['TCP, 4 streams', 'tcp4', (v) => `${v.toFixed(2)} Gbit/s`],
  ['new connections/s', 'cps', (v) => `${v.toFixed(0)}/s`],
];
if (results.memif) {
  const m = results.memif;
  console.log(
    `\nmemif → net_null (no kernel), 64 B UDP, medians of ${ROUNDS} round(s):` +
      ` testpmd mac-fwd ${(m.medians.testpmd.pps / 1e6).toFixed(2)} Mpps (${m.nsPerPacket.testpmd.toFixed(0)} ns/packet)` +
      ` | Fulcrum FULLNAT ${(m.medians.fulcrum.pps / 1e6).toFixed(2)} Mpps (${m.nsPerPacket.fulcrum.toFixed(0)} ns/packet)` +
      ` | ratio ${m.ratios.pps.toFixed(2)}`,
  );
}
for (const [pmd, r] of Object.entries(results)) {
  if (pmd === 'memif') continue;
  console.log(
    `\n${pmd}: medians of ${ROUNDS} round(s) of ${SECONDS} s   testpmd mac-fwd | Fulcrum FULLNAT | ratio`,
  );
  for (const [label, k, fmt] of rows)
    console.log(
      `  ${label.padEnd(22)} ${fmt(r.medians.testpmd[k]).padStart(14)} | ${fmt(r.medians.fulcrum[k]).padStart(14)} | ${r.ratios[k].toFixed(2)}`,
    );
}
const disturbed = Object.entries(results).flatMap(([pmd, r]) =>
  Object.entries(r.rounds).flatMap(([name, rs]) =>
    rs.flatMap((x, i) => (x.otherCores > DISTURBED ? [`${pmd} ${name} round ${i + 1}`] : [])),
  ),
);
if (disturbed.length)
  console.log(
    `\nWARNING: ${disturbed.length} round(s) ran beside more than ${DISTURBED} core of other load ` +
      `(${disturbed.join(', ')}): the figures above measure the machine as much as the forwarders.`,
  );
const out = {
  when: new Date().toISOString(),
  disturbed,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, kernel: release(), loadavg: loadavg() },
  seconds: SECONDS,
  rounds: ROUNDS,
  results,
};
const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const stamp = out.when.replace(/[:.]/g, '-');
writeFileSync(join(dir, `dpdk-forward-${stamp}.json`), `${JSON.stringify(out, null, 2)}\n`);
writeFileSync(join(dir, 'dpdk-forward-latest.json'), `${JSON.stringify(out, null, 2)}\n`);
log(`wrote bench/results/dpdk-forward-${stamp}.json`);
// The servers (nginx, iperf3) would keep the event loop alive: exit, which cleans up.
process.exit(0);
