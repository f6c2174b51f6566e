// The software cost of redirect between worker lcores (issue 8), from memory (no NIC, no
// I/O, no JavaScript per packet), on one thread: a server's reply received by the worker
// that owns its connection, against the same reply received by the other worker, which
// checks the owner, hands it over through the owner's rte_ring (one enqueue per burst of
// 32) and lets the owner process it. Also one worker alone (no owner check at all), the
// baseline of bench/dpdk/pipeline.mjs. Cross-core cache traffic is not in these figures.
// Runs against the built packages: `npm run build && node bench/dpdk/workers.mjs`.
// Writes bench/results/dpdk-workers-<time>.json (and dpdk-workers-latest.json).
import { Buffer } from 'node:buffer';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

let dpdk;
try {
  dpdk = await import('@fulcrum/dataplane-dpdk');
} catch (e) {
  console.error(`cannot load @fulcrum/dataplane-dpdk (${e.message}); run \`npm run build\` first`);
  process.exit(1);
}
const reason = dpdk.nativeUnavailableReason();
if (reason) {
  console.error(reason);
  process.exit(1);
}

const CONNECTIONS = 1024;
const ROUNDS = 500;

const ip4 = (t) => Buffer.from(t.split('.').map(Number));
const mac = (t) => Buffer.from(t.split(':').map((h) => parseInt(h, 16)));
function sum(buf, s = 0) {
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += buf[buf.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}
function tcpFrame(srcMac, dstMac, src, dst, sport, dport, flags, payload = 0) {
  const tcp = Buffer.alloc(20 + payload);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp.writeUInt32BE(1, 4);
  tcp[12] = 0x50;
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  const ph = Buffer.concat([ip4(src), ip4(dst), Buffer.from([0, 6, tcp.length >> 8, tcp.length & 255])]);
  tcp.writeUInt16BE(~sum(tcp, sum(ph)) & 0xffff, 16);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + tcp.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  ip4(src).copy(ip, 12);
  ip4(dst).copy(ip, 16);
  ip.writeUInt16BE(~sum(ip) & 0xffff, 10);
  return Buffer.concat([mac(dstMac), mac(srcMac), Buffer.from([8, 0]), ip, tcp]);
}
const SYN = 0x02,
  ACK = 0x10,
  PSH = 0x08;
const WAN = '02:00:00:00:00:01',
  LAN = '02:00:00:00:00:02',
  CMAC = '02:00:00:00:01:02',
  SMAC = '02:00:00:00:02:11';
const servers = Array.from({ length: 8 }, (_, i) => ({ address: `10.2.0.${11 + i}`, port: 8080 }));
const realServers = servers.map((s, index) => ({
  index,
  key: `${s.address}:${s.port}`,
  ...s,
  weight: 1,
  configuredWeight: 1,
  health: 'up',
  draining: false,
}));

// Replies (64 B payload) to CONNECTIONS established connections, all owned by worker 1.
function setup(workers) {
  const h = new dpdk.PacketHarness({
    ports: [
      { name: 'wan', mac: WAN, addresses: ['10.1.0.1/24'] },
      { name: 'lan', mac: LAN, addresses: ['10.2.0.1/16'] },
    ],
    routes: [{ to: '0.0.0.0/0', via: '10.1.0.254', port: 'wan' }],
    neighbors: [
      ...servers.map((s) => ({ port: 'lan', address: s.address, mac: SMAC })),
      { port: 'wan', address: '10.1.0.254', mac: CMAC },
    ],
    maxConnections: 4 * CONNECTIONS,
    timeouts: { established: 3_600_000, synRecv: 3_600_000 },
    workers,
  });
  h.apply({
    added: [
      {
        name: 'web',
        protocol: 'tcp',
        listen: { address: '10.1.0.100', port: 80, family: 4 },
        realServers,
        version: 1,
        plan: { kind: 'sequence', sequence: realServers.map((_, i) => i) },
        onFailure: 'inhibit',
        drain: { idleCloseMs: 1000, deadlineMs: 10_000 },
        quorum: { up: true, liveWeight: 8, required: 1 },
        localAddresses: ['10.2.1.1'],
        retired: [],
      },
    ],
    updated: [],
    removed: [],
  });
  const owner = workers - 1;
  const replies = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = { ip: `198.19.${i >> 8}.${i & 255}`, port: 40000 };
    const [out] = h.inject('wan', tcpFrame(CMAC, WAN, c.ip, '10.1.0.100', c.port, 80, SYN), 0, owner);
    const f = out.frame;
    const srv = `${f[30]}.${f[31]}.${f[32]}.${f[33]}`;
    const lport = f.readUInt16BE(34);
    h.inject('lan', tcpFrame(SMAC, LAN, srv, '10.2.1.1', 8080, lport, SYN | ACK), 0, owner);
    h.inject('wan', tcpFrame(CMAC, WAN, c.ip, '10.1.0.100', c.port, 80, ACK), 0, owner);
    replies.push({ port: 'lan', frame: tcpFrame(SMAC, LAN, srv, '10.2.1.1', 8080, lport, ACK | PSH, 64) });
  }
  return { h, replies };
}

const one = setup(1);
const two = setup(2);
const n = CONNECTIONS * ROUNDS;
// Warm up each path once, then measure.
one.h.benchReceived(one.replies, 50, 0);
two.h.benchReceived(two.replies, 50, 1);
two.h.benchReceived(two.replies, 50, 0);
// Interleaved, the best of REPEATS each: this machine is shared, the minimum is the cost.
const REPEATS = 7;
const best = { single: Infinity, owned: Infinity, redirected: Infinity };
for (let r = 0; r < REPEATS; r++) {
  best.single = Math.min(best.single, one.h.benchReceived(one.replies, ROUNDS, 0) / n);
  best.owned = Math.min(best.owned, two.h.benchReceived(two.replies, ROUNDS, 1) / n);
  best.redirected = Math.min(best.redirected, two.h.benchReceived(two.replies, ROUNDS, 0) / n);
}
const { single, owned, redirected } = best;
const c = two.h.workerCounters();
if (c[0].drop_redirect_ring_full || c[1].fullnat_out < 2 * REPEATS * n) {
  console.error('replies were not all forwarded', c);
  process.exit(1);
}
const results = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  connections: CONNECTIONS,
  oneWorkerNs: single,
  ownerNs: owned,
  redirectedNs: redirected,
  redirectCostNs: redirected - owned,
  redirected: c[0].redirected,
};
console.log(`dpdk workers: a server's reply (64 B payload), ${CONNECTIONS} connections (${results.cpu})`);
console.log(`  one worker                          ${single.toFixed(1)} ns`);
console.log(`  two workers, received by its owner  ${owned.toFixed(1)} ns`);
console.log(
  `  two workers, received by the other  ${redirected.toFixed(1)} ns  (redirect: +${(redirected - owned).toFixed(1)} ns, ${(redirected / owned).toFixed(2)}x)`,
);

const dir = join(new URL('../results', import.meta.url).pathname);
mkdirSync(dir, { recursive: true });
const stamp = results.date.replace(/[:.]/g, '-');
writeFileSync(join(dir, `dpdk-workers-${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, 'dpdk-workers-latest.json'), JSON.stringify(results, null, 2) + '\n');
