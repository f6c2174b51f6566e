// A small frame builder and parser for the packet-by-packet tests (Katran's PacketBuilder
// idea): every checksum is computed here, independently of the native code under test.

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;

const ip4 = (text: string) => Buffer.from(text.split('.').map(Number));
const mac = (text: string) => Buffer.from(text.split(':').map((h) => parseInt(h, 16)));
const ipText = (b: Buffer, o: number) => `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
const macText = (b: Buffer, o: number) =>
  [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');

export function onesSum(buf: Buffer, sum = 0): number {
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length & 1) sum += buf[buf.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
const checksum = (buf: Buffer, sum = 0) => ~onesSum(buf, sum) & 0xffff;
const pseudo = (src: Buffer, dst: Buffer, proto: number, len: number) =>
  onesSum(Buffer.concat([src, dst, Buffer.from([0, proto, len >> 8, len & 255])]));

export interface L2 {
  src: string;
  dst: string;
}

export function ether(l2: L2, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  mac(l2.dst).copy(h, 0);
  mac(l2.src).copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export interface Ipv4Fields {
  src: string;
  dst: string;
  proto: number;
  ttl?: number;
  id?: number;
  /** flags and fragment offset word (e.g. 0x2000 = more fragments) */
  frag?: number;
}

export function ipv4(f: Ipv4Fields, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h.writeUInt16BE(f.id ?? 1, 4);
  h.writeUInt16BE(f.frag ?? 0x4000, 6);
  h[8] = f.ttl ?? 64;
  h[9] = f.proto;
  ip4(f.src).copy(h, 12);
  ip4(f.dst).copy(h, 16);
  h.writeUInt16BE(checksum(h), 10);
  return Buffer.concat([h, payload]);
}

export interface Endpoints {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface TcpFields extends Endpoints {
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  data?: Buffer;
  /** TCP options, padded here with EOL to a multiple of 4 bytes. */
  options?: Buffer;
}

export function tcpSegment(f: TcpFields): Buffer {
  const data = f.data ?? Buffer.alloc(0);
  const opts = f.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + Math.ceil(opts.length / 4) * 4);
  opts.copy(h, 20);
  h.writeUInt16BE(f.sport, 0);
  h.writeUInt16BE(f.dport, 2);
  h.writeUInt32BE((f.seq ?? 1000) >>> 0, 4);
  h.writeUInt32BE((f.ack ?? 0) >>> 0, 8);
  h[12] = (h.length / 4) << 4;
  h[13] = f.flags;
  h.writeUInt16BE(f.window ?? 65535, 14);
  const seg = Buffer.concat([h, data]);
  seg.writeUInt16BE(checksum(seg, pseudo(ip4(f.src), ip4(f.dst), 6, seg.length)), 16);
  return seg;
}

export function udpDatagram(f: Endpoints & { data?: Buffer; noChecksum?: boolean }): Buffer {
  const data = f.data ?? Buffer.alloc(0);
  const h = Buffer.alloc(8);
  h.writeUInt16BE(f.sport, 0);
  h.writeUInt16BE(f.dport, 2);
  h.writeUInt16BE(8 + data.length, 4);
  const dg = Buffer.concat([h, data]);
  if (!f.noChecksum)
    dg.writeUInt16BE(checksum(dg, pseudo(ip4(f.src), ip4(f.dst), 17, dg.length)) || 0xffff, 6);
  return dg;
}

export const tcpFrame = (l2: L2, f: TcpFields) =>
  ether(l2, 0x0800, ipv4({ src: f.src, dst: f.dst, proto: 6 }, tcpSegment(f)));
export const udpFrame = (l2: L2, f: Endpoints & { data?: Buffer; noChecksum?: boolean }) =>
  ether(l2, 0x0800, ipv4({ src: f.src, dst: f.dst, proto: 17 }, udpDatagram(f)));

export function icmpEchoFrame(
  l2: L2,
  src: string,
  dst: string,
  id: number,
  seq: number,
  data: Buffer,
): Buffer {
  const h = Buffer.alloc(8);
  h[0] = 8;
  h.writeUInt16BE(id, 4);
  h.writeUInt16BE(seq, 6);
  const msg = Buffer.concat([h, data]);
  msg.writeUInt16BE(checksum(msg), 2);
  return ether(l2, 0x0800, ipv4({ src, dst, proto: 1 }, msg));
}

export function arpFrame(
  op: 1 | 2,
  sha: string,
  spa: string,
  tha: string,
  tpa: string,
  ethDst?: string,
): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(op, 6);
  mac(sha).copy(a, 8);
  ip4(spa).copy(a, 14);
  mac(tha).copy(a, 18);
  ip4(tpa).copy(a, 24);
  return ether({ src: sha, dst: ethDst ?? (op === 1 ? 'ff:ff:ff:ff:ff:ff' : tha) }, 0x0806, a);
}

export interface TcpOptions {
  mss?: number;
  wscale?: number;
  sackPermitted?: boolean;
  ts?: { val: number; ecr: number };
  sack?: [number, number][];
}

/** Option builders (kind, length, value), for SYNs and SACKs in tests. */
export const opt = {
  mss: (v: number) => Buffer.from([2, 4, v >> 8, v & 255]),
  wscale: (v: number) => Buffer.from([1, 3, 3, v]),
  sackPermitted: () => Buffer.from([1, 1, 4, 2]),
  ts: (val: number, ecr: number) => {
    const b = Buffer.alloc(12);
    b[0] = 1;
    b[1] = 1;
    b[2] = 8;
    b[3] = 10;
    b.writeUInt32BE(val >>> 0, 4);
    b.writeUInt32BE(ecr >>> 0, 8);
    return b;
  },
  sack: (...blocks: [number, number][]) => {
    const b = Buffer.alloc(4 + 8 * blocks.length);
    b[0] = 1;
    b[1] = 1;
    b[2] = 5;
    b[3] = 2 + 8 * blocks.length;
    blocks.forEach(([l, r], i) => {
      b.writeUInt32BE(l >>> 0, 4 + 8 * i);
      b.writeUInt32BE(r >>> 0, 8 + 8 * i);
    });
    return b;
  },
};

export function parseTcpOptions(b: Buffer): TcpOptions {
  const o: TcpOptions = {};
  for (let i = 0; i < b.length;) {
    const kind = b[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = b[i + 1]!;
    if (len < 2 || i + len > b.length) throw new Error(`malformed TCP option at ${i}`);
    if (kind === 2) o.mss = b.readUInt16BE(i + 2);
    else if (kind === 3) o.wscale = b[i + 2]!;
    else if (kind === 4) o.sackPermitted = true;
    else if (kind === 8) o.ts = { val: b.readUInt32BE(i + 2), ecr: b.readUInt32BE(i + 6) };
    else if (kind === 5)
      o.sack = Array.from({ length: (len - 2) / 8 }, (_, k): [number, number] => [
        b.readUInt32BE(i + 2 + 8 * k),
        b.readUInt32BE(i + 6 + 8 * k),
      ]);
    i += len;
  }
  return o;
}

export interface ParsedFrame {
  eth: { dst: string; src: string; type: number };
  arp?: { op: number; sha: string; spa: string; tha: string; tpa: string };
  ip?: { src: string; dst: string; proto: number; ttl: number; id: number; checksumOk: boolean };
  tcp?: {
    sport: number;
    dport: number;
    seq: number;
    ack: number;
    flags: number;
    window: number;
    checksumOk: boolean;
    /** The option area (between the fixed header and the payload). */
    options: Buffer;
    /** The options parsed. */
    opts: TcpOptions;
  };
  udp?: { sport: number; dport: number; checksum: number; checksumOk: boolean };
  icmp?: { type: number; code: number; id: number; seq: number; checksumOk: boolean };
  payload: Buffer;
}

/** Decodes what the pipeline emitted, verifying every checksum on its own. */
export function parseFrame(b: Buffer): ParsedFrame {
  const out: ParsedFrame = {
    eth: { dst: macText(b, 0), src: macText(b, 6), type: b.readUInt16BE(12) },
    payload: Buffer.alloc(0),
  };
  if (out.eth.type === 0x0806) {
    out.arp = {
      op: b.readUInt16BE(20),
      sha: macText(b, 22),
      spa: ipText(b, 28),
      tha: macText(b, 32),
      tpa: ipText(b, 38),
    };
    return out;
  }
  if (out.eth.type !== 0x0800) return out;
  const ip = b.subarray(14);
  const ihl = (ip[0]! & 15) * 4;
  const total = ip.readUInt16BE(2);
  if (total > ip.length) throw new RangeError(`IP total length ${total} exceeds the ${ip.length}-byte frame`);
  out.ip = {
    src: ipText(ip, 12),
    dst: ipText(ip, 16),
    proto: ip[9]!,
    ttl: ip[8]!,
    id: ip.readUInt16BE(4),
    checksumOk: onesSum(ip.subarray(0, ihl)) === 0xffff,
  };
  const l4 = ip.subarray(ihl, total);
  const ps = pseudo(ip.subarray(12, 16), ip.subarray(16, 20), out.ip.proto, l4.length);
  if (out.ip.proto === 6) {
    const doff = (l4[12]! >> 4) * 4;
    out.tcp = {
      sport: l4.readUInt16BE(0),
      dport: l4.readUInt16BE(2),
      seq: l4.readUInt32BE(4),
      ack: l4.readUInt32BE(8),
      flags: l4[13]!,
      window: l4.readUInt16BE(14),
      checksumOk: onesSum(l4, ps) === 0xffff,
      options: Buffer.from(l4.subarray(20, doff)),
      opts: parseTcpOptions(l4.subarray(20, doff)),
    };
    out.payload = Buffer.from(l4.subarray(doff));
  } else if (out.ip.proto === 17) {
    const c = l4.readUInt16BE(6);
    out.udp = {
      sport: l4.readUInt16BE(0),
      dport: l4.readUInt16BE(2),
      checksum: c,
      checksumOk: c === 0 || onesSum(l4, ps) === 0xffff,
    };
    out.payload = Buffer.from(l4.subarray(8));
  } else if (out.ip.proto === 1) {
    out.icmp = {
      type: l4[0]!,
      code: l4[1]!,
      id: l4.readUInt16BE(4),
      seq: l4.readUInt16BE(6),
      checksumOk: onesSum(l4) === 0xffff,
    };
    out.payload = Buffer.from(l4.subarray(8));
  }
  return out;
}

/** A classic pcap file (linktype Ethernet) of the given frames. */
export function pcap(frames: readonly Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const records = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([head, ...records]);
}
