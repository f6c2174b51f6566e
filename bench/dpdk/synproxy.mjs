// SYNPROXY against plain FULLNAT in the same run (issue 9), two ways:
//  1. the pipeline alone, from memory (no NIC, no I/O): a FULLNAT SYN, a cookie SYN-ACK, and
//     the cookie ACK that opens the server connection;
//  2. end to end on the same veth ports in network namespaces (root, `wrk`, `hping3`): new
//     connections/s (wrk with Connection: close) through a FULLNAT and a SYNPROXY service of
//     one dataplane, then again while hping3 floods the SYNPROXY VIP with SYNs from
//     addresses of the client's own subnet (bounded count and rate), and how many flood
//     packets/s the dataplane answered with cookies meanwhile.
// Ratios are against the same run's plain FULLNAT figures. Run serialised with the others:
//   npm run build && flock /tmp/fulcrum-bench.lock node bench/dpdk/synproxy.mjs [--quick] [--no-e2e]
// Writes bench/results/dpdk-synproxy-<time>.json (and dpdk-synproxy-latest.json).
import { Buffer } from 'node:buffer';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { loadDpdk, tcpService, upServers, tcpFrame as buildTcpFrame, SYN, ACK } from '../lib/frames.mjs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ensureTools, flag, median, onPath } from '../lib/tools.mjs';

const dpdk = await loadDpdk();
const quick = flag('--quick');
// Spoofed, but from the client's own subnet; their neighbour entries point at the client
// namespace (which drops the cookie SYN-ACKs), as a gateway would take them on the Internet:
// without them every cookie SYN-ACK would cost an ARP request for an address nobody holds.
const FLOOD_SOURCES = ['10.1.0.50', '10.1.0.51', '10.1.0.52', '10.1.0.53'];
const results = { date: new Date().toISOString(), cpu: cpus()[0]?.model };

// ---- 1. the pipeline alone ------------------------------------------------------------------
// A SYN carries what Linux sends (MSS, SACK permitted, timestamps, window scale).
const SYN_OPTIONS = Buffer.from([2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
// Every frame here comes from the client toward the wan port.
const tcpFrame = (src, dst, sport, dport, flags, seq, ack, options) =>
  buildTcpFrame({
    srcMac: '02:00:00:00:01:02',
    dstMac: '02:00:00:00:00:01',
    src,
    dst,
    sport,
    dport,
    flags,
    seq,
    ack,
    options,
  });

function pipeline() {
  const N = quick ? 20_000 : 100_000;
  const servers = upServers(
    [0, 1, 2, 3].map((i) => `10.2.0.${11 + i}`),
    8080,
  );
  const h = new dpdk.PacketHarness({
    ports: [
      { name: 'wan', mac: '02:00:00:00:00:01', addresses: ['10.1.0.1/24'] },
      { name: 'lan', mac: '02:00:00:00:00:02', addresses: ['10.2.0.1/16'] },
    ],
    routes: [{ to: '0.0.0.0/0', via: '10.1.0.254', port: 'wan' }],
    neighbors: [
      ...servers.map((s) => ({ port: 'lan', address: s.address, mac: '02:00:00:00:02:11' })),
      { port: 'wan', address: '10.1.0.254', mac: '02:00:00:00:01:fe' },
    ],
    maxConnections: 3 * N,
  });
  const service = (name, port, synproxy) =>
    tcpService({
      name,
      port,
      realServers: servers,
      localAddresses: ['10.2.1.1', '10.2.1.2', '10.2.1.3', '10.2.1.4'],
      ...(synproxy ? { synproxy: true } : {}),
    });
  h.apply({ added: [service('plain', 80, false), service('guarded', 82, true)], updated: [], removed: [] });
  const client = (i) => ({ ip: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`, port: 1024 + (i >> 16) });
  const frames = (port, make) =>
    Array.from({ length: N }, (_, i) => ({ port: 'wan', frame: make(client(i), port) }));
  const plainSyns = frames(80, (c, p) => tcpFrame(c.ip, '10.1.0.100', c.port, p, SYN, 1000, 0, SYN_OPTIONS));
  const guardedSyns = frames(82, (c, p) =>
    tcpFrame(c.ip, '10.1.0.100', c.port, p, SYN, 1000, 0, SYN_OPTIONS),
  );
  const fullnatSynNs = h.bench(plainSyns, 1) / N;
  const rounds = quick ? 2 : 5;
  const cookieNs = h.bench(guardedSyns, rounds) / (N * rounds);
  // The cookies, through inject() (outside the measurement), for the ACKs that open connections.
  const acks = guardedSyns.map(({ frame }, i) => {
    const [out] = h.inject('wan', frame);
    const cookie = out.frame.readUInt32BE(14 + 20 + 4);
    const c = client(i);
    return { port: 'wan', frame: tcpFrame(c.ip, '10.1.0.100', c.port, 82, ACK, 1001, cookie + 1) };
  });
  const openNs = h.bench(acks, 1) / N;
  const c = h.counters();
  if (c.synproxy_ack_valid !== N || c.connections !== 2 * N)
    throw new Error(`unexpected counters ${JSON.stringify(c)}`);
  return { connections: N, fullnatSynNs, cookieNs, cookieAckNs: openNs };
}

results.pipeline = pipeline();
const p = results.pipeline;
console.log(`SYNPROXY vs FULLNAT, the pipeline alone (${results.cpu})`);
console.log(`  FULLNAT new connection (SYN → server)           ${p.fullnatSynNs.toFixed(0)} ns`);
console.log(
  `  SYNPROXY cookie SYN-ACK (no state)              ${p.cookieNs.toFixed(0)} ns  (${(1e3 / p.cookieNs).toFixed(2)} M SYN/s absorbed per core)`,
);
console.log(`  SYNPROXY cookie ACK → connection + server SYN   ${p.cookieAckNs.toFixed(0)} ns`);
console.log(
  `  ratio SYNPROXY open (SYN-ACK + ACK) / FULLNAT SYN: ${((p.cookieNs + p.cookieAckNs) / p.fullnatSynNs).toFixed(2)}`,
);

// ---- 2. end to end on veth ports ----------------------------------------------------------
const noE2e = flag('--no-e2e') || process.getuid?.() !== 0 || !onPath('ip') || !onPath('ethtool');
if (noE2e) {
  console.log(`  (end to end skipped: ${flag('--no-e2e') ? '--no-e2e' : 'needs root, ip and ethtool'})`);
} else {
  ensureTools([
    ['wrk', 'wrk'],
    ['hping3', 'hping3'],
  ]);
  results.e2e = await endToEnd();
}

async function endToEnd() {
  const id = `b${process.pid % 100000}`;
  const cli = `fdc${id}`,
    srv = `fds${id}`,
    wan = `fdw${id}`,
    lan = `fdl${id}`;
  const run = (...a) =>
    execFileSync(a[0], a.slice(1), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const procs = [];
  const cleanup = () => {
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of [cli, srv])
      try {
        run('ip', 'netns', 'del', ns);
      } catch {
        /* gone */
      }
    for (const d of [wan, lan])
      try {
        run('ip', 'link', 'del', d);
      } catch {
        /* gone with its peer */
      }
  };
  process.on('exit', cleanup);
  try {
    run('ip', 'netns', 'add', cli);
    run('ip', 'netns', 'add', srv);
    for (const [own, ns, addr, gw] of [
      [wan, cli, ['10.1.0.2/24'], '10.1.0.1'],
      [lan, srv, ['10.2.0.11/24', '10.2.0.12/24'], '10.2.0.1'],
    ]) {
      run('ip', 'link', 'add', own, 'type', 'veth', 'peer', 'name', `${own}p`);
      run('ip', 'link', 'set', `${own}p`, 'netns', ns);
      run('ip', 'link', 'set', own, 'up');
      run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      run('ip', '-n', ns, 'link', 'set', `${own}p`, 'up');
      run('ip', 'netns', 'exec', ns, 'ethtool', '-K', `${own}p`, 'tx', 'off');
      for (const a of addr) run('ip', '-n', ns, 'addr', 'add', a, 'dev', `${own}p`);
      run('ip', '-n', ns, 'route', 'add', 'default', 'via', gw);
    }
    const macOf = (ns, dev) => JSON.parse(run('ip', '-n', ns, '-j', 'link', 'show', dev))[0].address;
    const server = spawn(
      'ip',
      [
        'netns',
        'exec',
        srv,
        process.execPath,
        '-e',
        `require('http').createServer((q, s) => s.end('ok')).listen(8080, () => console.log('up'))`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    procs.push(server);
    await new Promise((r) => server.stdout.once('data', r));
    const prefix = `fulcrum-bench-${id}`;
    const yaml = `
dataplane:
  name: dpdk
  options:
    eal: ['-l', '0', '--no-pci', '--no-huge', '-m', '512', '--no-shconf', '--no-telemetry', '--file-prefix', '${prefix}']
    ports:
      - { name: wan, vdev: 'net_af_xdp0,iface=${wan},start_queue=0,queue_count=1', addresses: [10.1.0.1/24] }
      - { name: lan, vdev: 'net_af_xdp1,iface=${lan},start_queue=0,queue_count=1', addresses: [10.2.0.1/24] }
    neighbors:
      - { port: wan, address: 10.1.0.2, mac: '${macOf(cli, `${wan}p`)}' }
${FLOOD_SOURCES.map((a) => `      - { port: wan, address: ${a}, mac: '${macOf(cli, `${wan}p`)}' }`).join('\n')}
      - { port: lan, address: 10.2.0.11, mac: '${macOf(srv, `${lan}p`)}' }
      - { port: lan, address: 10.2.0.12, mac: '${macOf(srv, `${lan}p`)}' }
    maxConnections: 262144
    timeouts: { timeWait: 1s, close: 1s }
services:
${[
  ['plain', 80, false],
  ['guarded', 82, true],
]
  .map(
    ([name, port, sp]) => `  - name: ${name}
    listen: 10.1.0.100:${port}
    scheduler: rr
    synproxy: ${sp}
    localAddresses: [${[0, 1, 2, 3].map((k) => `10.2.0.${(sp ? 204 : 200) + k}`).join(', ')}]
    realServers: [{ address: '10.2.0.11:8080' }, { address: '10.2.0.12:8080' }]`,
  )
  .join('\n')}
`;
    const childScript = fileURLToPath(
      new URL('../../packages/dataplane-dpdk/src/__tests__/eal-child.mjs', import.meta.url),
    );
    const dp = spawn(process.execPath, [childScript, yaml], { stdio: ['pipe', 'pipe', 'ignore'] });
    procs.push(dp);
    const lines = [];
    let wake = () => {};
    createInterface({ input: dp.stdout }).on('line', (l) => {
      lines.push(l);
      wake();
    });
    const next = async (word) => {
      for (;;) {
        const i = lines.findIndex((l) => l.startsWith(word) || l.startsWith('failed'));
        if (i >= 0) {
          const l = lines.splice(i, 1)[0];
          if (l.startsWith('failed')) throw new Error(l);
          return l.slice(word.length).trim();
        }
        await new Promise((r) => ((wake = r), setTimeout(r, 200)));
      }
    };
    await next('ready');
    const synproxyCounter = async (event) => {
      dp.stdin.write('counters\n');
      const { metrics } = JSON.parse(await next('counters'));
      return Number(
        new RegExp(`fulcrum_dpdk_synproxy_total\\{event="${event}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0,
      );
    };
    // Four local addresses per service: ~256k local ports, so no port comes back while the
    // servers still hold its previous connection in TIME_WAIT (60 s) during the run.
    const seconds = quick ? 3 : 6;
    const exec = (cmd) =>
      new Promise((resolve) => {
        const c = spawn('ip', ['netns', 'exec', cli, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
        procs.push(c);
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.stderr.on('data', (d) => (out += d));
        c.on('exit', () => resolve(out));
      });
    const wrk = async (port) => {
      const out = await exec([
        'wrk',
        '-t',
        '1',
        '-c',
        '16',
        '-d',
        `${seconds}s`,
        '-H',
        'Connection: close',
        `http://10.1.0.100:${port}/`,
      ]);
      const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
      const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? 'none';
      return { connectionsPerSec: rate, errors };
    };
    const plain = [],
      guarded = [];
    for (let i = 0; i < 3; i++) {
      plain.push(await wrk(80));
      guarded.push(await wrk(82));
    }
    // The flood: 4 sources of the client's subnet, each at most 5,000 SYN/s for the same time.
    // First aimed at a VIP port with no service (the dataplane drops each SYN at once): what
    // generating the flood on this machine costs wrk by itself. Then at the SYNPROXY service.
    const perSource = 5000 * seconds;
    const floodTo = (port) =>
      FLOOD_SOURCES.map((a) =>
        exec([
          'hping3',
          '-q',
          '-S',
          '-p',
          String(port),
          '-a',
          a,
          '-i',
          'u200',
          '-c',
          String(perSource),
          '10.1.0.100',
        ]),
      );
    const control = floodTo(9);
    const underControl = await wrk(82);
    await Promise.all(control);
    const before = await synproxyCounter('syn_answered');
    const validBefore = await synproxyCounter('ack_valid');
    const t0 = Date.now();
    const flood = floodTo(82);
    const underFlood = await wrk(82);
    const floodOut = await Promise.all(flood);
    const floodSec = (Date.now() - t0) / 1000;
    const answered = (await synproxyCounter('syn_answered')) - before;
    const legit = (await synproxyCounter('ack_valid')) - validBefore;
    const sent = floodOut
      .map((o) => Number(/(\d+) packets transmitted/.exec(o)?.[1] ?? 0))
      .reduce((a, b) => a + b, 0);
    const mid = (xs) => median(xs.map((x) => x.connectionsPerSec));
    const e2e = {
      pmd: 'af_xdp',
      seconds,
      fullnatConnectionsPerSec: mid(plain),
      synproxyConnectionsPerSec: mid(guarded),
      synproxyUnderFloodConnectionsPerSec: underFlood.connectionsPerSec,
      synproxyUnderControlFloodConnectionsPerSec: underControl.connectionsPerSec,
      floodSent: sent,
      floodPerSec: sent / floodSec,
      floodAnsweredPerSec: (answered - legit) / floodSec,
      floodAnswered: answered - legit,
      errors: [...plain, ...guarded, underControl, underFlood]
        .map((r) => r.errors)
        .filter((e) => e !== 'none'),
    };
    console.log(`End to end, af_xdp veth ports, wrk -c16 with Connection: close, ${seconds}s runs`);
    console.log(`  FULLNAT   new connections/s   ${e2e.fullnatConnectionsPerSec.toFixed(0)}`);
    console.log(
      `  SYNPROXY  new connections/s   ${e2e.synproxyConnectionsPerSec.toFixed(0)}  (ratio to FULLNAT ${(e2e.synproxyConnectionsPerSec / e2e.fullnatConnectionsPerSec).toFixed(2)})`,
    );
    const f = e2e.floodPerSec.toFixed(0);
    console.log(
      `  SYNPROXY, the same flood sent to a port with no service  ${e2e.synproxyUnderControlFloodConnectionsPerSec.toFixed(0)}  (ratio to no flood ${(e2e.synproxyUnderControlFloodConnectionsPerSec / e2e.synproxyConnectionsPerSec).toFixed(2)}: generating ${f} SYN/s here costs that much)`,
    );
    console.log(
      `  SYNPROXY under a ${f} SYN/s flood at it   ${e2e.synproxyUnderFloodConnectionsPerSec.toFixed(0)}  (ratio to no flood ${(e2e.synproxyUnderFloodConnectionsPerSec / e2e.synproxyConnectionsPerSec).toFixed(2)}, to the control ${(e2e.synproxyUnderFloodConnectionsPerSec / e2e.synproxyUnderControlFloodConnectionsPerSec).toFixed(2)}; flood SYNs answered with cookies ${e2e.floodAnsweredPerSec.toFixed(0)}/s)`,
    );
    if (e2e.errors.length) console.log('  wrk socket errors:', e2e.errors);
    dp.stdin.write('exit\n');
    return e2e;
  } finally {
    cleanup();
    try {
      execFileSync('rm', ['-rf', `/var/run/dpdk/fulcrum-bench-${id}`]);
    } catch {
      /* nothing left */
    }
  }
}

const dir = join(new URL('../results', import.meta.url).pathname);
mkdirSync(dir, { recursive: true });
const stamp = results.date.replace(/[:.]/g, '-');
writeFileSync(join(dir, `dpdk-synproxy-${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, 'dpdk-synproxy-latest.json'), JSON.stringify(results, null, 2) + '\n');
