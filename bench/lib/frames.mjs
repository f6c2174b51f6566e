// What the dpdk benchmarks share: loading the built addon (or saying why not), and a minimal
// Ethernet/IPv4/TCP frame builder with its own checksums (the tests have the full one).
import { Buffer } from 'node:buffer';

/** @fulcrum/dataplane-dpdk with its native addon, or exits with the reason it cannot load. */
export async function loadDpdk() {
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
  return dpdk;
}

export const ip4 = (t) => Buffer.from(t.split('.').map(Number));
export const mac = (t) => Buffer.from(t.split(':').map((h) => parseInt(h, 16)));
export const SYN = 0x02;
export const ACK = 0x10;
export const PSH = 0x08;

/** One's-complement sum of 16-bit words (RFC 1071), not yet inverted. */
export function sum(buf, s = 0) {
  for (let i = 0; i + 1 < buf.length; i += 2) s += buf.readUInt16BE(i);
  if (buf.length & 1) s += buf[buf.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** An Ethernet frame holding a TCP segment over IPv4, checksums set. */
export function tcpFrame({
  srcMac,
  dstMac,
  src,
  dst,
  sport,
  dport,
  flags,
  seq = 1,
  ack = 0,
  options,
  payload = 0,
}) {
  const opts = options ?? Buffer.alloc(0);
  const tcp = Buffer.alloc(20 + opts.length + payload);
  tcp.writeUInt16BE(sport, 0);
  tcp.writeUInt16BE(dport, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(ack >>> 0, 8);
  tcp[12] = ((20 + opts.length) / 4) << 4;
  tcp[13] = flags;
  tcp.writeUInt16BE(65535, 14);
  opts.copy(tcp, 20);
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

/** The MACs of the pipeline benchmarks' two-arm topology. */
export const BENCH_MACS = {
  wan: '02:00:00:00:00:01',
  lan: '02:00:00:00:00:02',
  client: '02:00:00:00:01:02',
  server: '02:00:00:00:02:11',
};

/**
 * A PacketHarness on the benchmarks' two-arm topology: clients beyond a gateway on wan (one
 * neighbour for all of them, as on the Internet), `servers` on lan 10.2.0.0/16, connections
 * that never time out while measured; `extra` adds or overrides harness options.
 */
export function benchHarness(dpdk, servers, extra = {}) {
  return new dpdk.PacketHarness({
    ports: [
      { name: 'wan', mac: BENCH_MACS.wan, addresses: ['10.1.0.1/24'] },
      { name: 'lan', mac: BENCH_MACS.lan, addresses: ['10.2.0.1/16'] },
    ],
    routes: [{ to: '0.0.0.0/0', via: '10.1.0.254', port: 'wan' }],
    neighbors: [
      ...servers.map((address) => ({ port: 'lan', address, mac: BENCH_MACS.server })),
      { port: 'wan', address: '10.1.0.254', mac: BENCH_MACS.client },
    ],
    timeouts: { established: 3_600_000, synRecv: 3_600_000 },
    ...extra,
  });
}

/** Real servers as the kernel hands them to a dataplane: all up, weight 1. */
export const upServers = (addresses, port) =>
  addresses.map((address, index) => ({
    index,
    key: `${address}:${port}`,
    address,
    port,
    weight: 1,
    configuredWeight: 1,
    health: 'up',
    draining: false,
  }));

/** A TCP service snapshot on 10.1.0.100:`port`, round robin over its servers. */
export const tcpService = ({ name = 'web', port = 80, realServers, localAddresses, ...extra }) => ({
  name,
  protocol: 'tcp',
  listen: { address: '10.1.0.100', port, family: 4 },
  realServers,
  version: 1,
  plan: { kind: 'sequence', sequence: realServers.map((_, i) => i) },
  onFailure: 'inhibit',
  drain: { idleCloseMs: 1000, deadlineMs: 10_000 },
  quorum: { up: true, liveWeight: realServers.length, required: 1 },
  localAddresses,
  retired: [],
  ...extra,
});
