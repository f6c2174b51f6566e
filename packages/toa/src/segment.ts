import { ipFamily, ipv4ToBytes, ipv6ToBytes } from './address.js';
import { ToaError, ToaErrorCodes as Codes } from './errors.js';
import { findToa, insertToa, type InsertToaOptions } from './tcp-options.js';
import type { ToaAddress } from './toa.js';

const TCP_HEADER_LENGTH = 20;

/** The IP addresses around a TCP segment, for its checksum's pseudo-header. */
export interface PseudoHeader {
  source: string;
  destination: string;
}

function headerLength(segment: Uint8Array): number {
  if (segment.length < TCP_HEADER_LENGTH)
    throw new ToaError(
      Codes.INVALID,
      `a TCP segment is at least 20 bytes; this one is ${segment.length}`,
      {},
    );
  const len = (segment[12]! >> 4) * 4;
  if (len < TCP_HEADER_LENGTH || len > segment.length)
    throw new ToaError(
      Codes.INVALID,
      `TCP data offset says ${len} bytes of header in a ${segment.length}-byte segment`,
      { headerLength: len },
    );
  return len;
}

function sum16(buf: Uint8Array, acc = 0): number {
  for (let i = 0; i + 1 < buf.length; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if (buf.length % 2) acc += buf[buf.length - 1]! << 8;
  return acc;
}

/** The Internet checksum (RFC 1071) over a TCP segment and its IPv4 or IPv6 pseudo-header. */
export function tcpChecksum(segment: Uint8Array, ip: PseudoHeader): number {
  const family = ipFamily(ip.source);
  if (!family || family !== ipFamily(ip.destination))
    throw new ToaError(Codes.ENCODE, 'the pseudo-header needs two addresses of one family', { ...ip });
  const pseudo = Buffer.alloc(family === 4 ? 12 : 40);
  if (family === 4) {
    ipv4ToBytes(ip.source, pseudo, 0);
    ipv4ToBytes(ip.destination, pseudo, 4);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(segment.length, 10);
  } else {
    ipv6ToBytes(ip.source, pseudo, 0);
    ipv6ToBytes(ip.destination, pseudo, 16);
    pseudo.writeUInt32BE(segment.length, 32);
    pseudo[39] = 6;
  }
  const copy = Buffer.from(segment);
  copy.writeUInt16BE(0, 16);
  let acc = sum16(copy, sum16(pseudo));
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return ~acc & 0xffff;
}

/**
 * A copy of a TCP segment (header, options, payload) with the client's TOA inserted first in
 * its options and the data offset raised to match. With `ip`, the checksum is recomputed;
 * without, it is left for the caller (a dataplane that offloads it). The IP header's length
 * field is the caller's to update (+8 or +20 bytes).
 */
export function insertToaIntoSegment(
  segment: Uint8Array,
  client: { address: string; port: number },
  options: InsertToaOptions & { ip?: PseudoHeader } = {},
): Buffer {
  const hl = headerLength(segment);
  const area = insertToa(segment.subarray(TCP_HEADER_LENGTH, hl), client, options);
  const out = Buffer.concat([segment.subarray(0, TCP_HEADER_LENGTH), area, segment.subarray(hl)]);
  out[12] = (((TCP_HEADER_LENGTH + area.length) / 4) << 4) | (out[12]! & 0x0f);
  if (options.ip) out.writeUInt16BE(tcpChecksum(out, options.ip), 16);
  return out;
}

/** The client address a TOA option in this segment names, as the TOA kernel module reads it. */
export function readToaFromSegment(segment: Uint8Array): ToaAddress | undefined {
  return findToa(segment.subarray(TCP_HEADER_LENGTH, headerLength(segment)));
}
