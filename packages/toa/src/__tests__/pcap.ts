// A minimal pcap writer for the tshark oracle: the classic libpcap file format (global header
// plus one record per frame), Ethernet frames carrying IPv4 or IPv6 with correct checksums.
import { isIPv4 } from 'node:net';
import { encodeToa } from '@fulcrum/toa';

const toBytes = (address: string): Buffer => encodeToa({ address, port: 0 }).subarray(4);

function ipv4HeaderChecksum(h: Buffer): number {
  let acc = 0;
  for (let i = 0; i < h.length; i += 2) acc += h.readUInt16BE(i);
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/** Ethernet + IP around a finished TCP segment (its checksum already computed). */
export function ethernetFrame(src: string, dst: string, segment: Buffer): Buffer {
  const eth = Buffer.from([0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0, 0]);
  if (isIPv4(src)) {
    eth.writeUInt16BE(0x0800, 12);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + segment.length, 2);
    ip.writeUInt16BE(0x1234, 4);
    ip.writeUInt16BE(0x4000, 6);
    ip[8] = 64;
    ip[9] = 6;
    toBytes(src).copy(ip, 12);
    toBytes(dst).copy(ip, 16);
    ip.writeUInt16BE(ipv4HeaderChecksum(ip), 10);
    return Buffer.concat([eth, ip, segment]);
  }
  eth.writeUInt16BE(0x86dd, 12);
  const ip = Buffer.alloc(40);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(segment.length, 4);
  ip[6] = 6;
  ip[7] = 64;
  toBytes(src).copy(ip, 8);
  toBytes(dst).copy(ip, 24);
  return Buffer.concat([eth, ip, segment]);
}

export function pcapFile(frames: Buffer[]): Buffer {
  const global = Buffer.alloc(24);
  global.writeUInt32LE(0xa1b2c3d4, 0);
  global.writeUInt16LE(2, 4);
  global.writeUInt16LE(4, 6);
  global.writeUInt32LE(65535, 16);
  global.writeUInt32LE(1, 20); // LINKTYPE_ETHERNET
  const records = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1_700_000_000 + i, 0);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([global, ...records]);
}

/** A TCP segment: ports, seq/ack, flags, the given options (padded by the caller) and payload; checksum 0. */
export function tcpSegment(o: {
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  options?: Buffer;
  payload?: Buffer;
}): Buffer {
  const options = o.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20);
  h.writeUInt16BE(o.sport, 0);
  h.writeUInt16BE(o.dport, 2);
  h.writeUInt32BE(o.seq >>> 0, 4);
  h.writeUInt32BE(o.ack >>> 0, 8);
  h[12] = ((20 + options.length) / 4) << 4;
  h[13] = o.flags;
  h.writeUInt16BE(502, 14);
  return Buffer.concat([h, options, o.payload ?? Buffer.alloc(0)]);
}
