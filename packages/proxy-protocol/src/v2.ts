import { isIPv4, isIPv6 } from 'node:net';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes, toIpv6 } from './address.js';
import { PP2_TYPE, UNIX_PATH_LENGTH, V2_ADDRESS_LENGTH, V2_FIXED_LENGTH, V2_SIGNATURE } from './constants.js';
import { crc32c } from './crc32c.js';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import { decodeTlvs, encodeTlvs, splitTlvs, tlv } from './tlv.js';
import type {
  ProxyEndpoint,
  ProxyFamily,
  ProxyHeader,
  ProxyHeaderInput,
  ProxyTransport,
  UnixEndpoint,
} from './types.js';
import { isInetEndpoint } from './types.js';

const FAMILY_CODE: Record<ProxyFamily, number> = { unspec: 0x0, inet: 0x1, inet6: 0x2, unix: 0x3 };
const TRANSPORT_CODE: Record<ProxyTransport, number> = { unspec: 0x0, stream: 0x1, dgram: 0x2 };
const FAMILIES: ProxyFamily[] = ['unspec', 'inet', 'inet6', 'unix'];
const TRANSPORTS: ProxyTransport[] = ['unspec', 'stream', 'dgram'];
/** The only family/transport bytes the specification defines; any other must be refused. */
export const V2_FAMILY_BYTES: ReadonlySet<number> = new Set([0x00, 0x11, 0x12, 0x21, 0x22, 0x31, 0x32]);

const malformed = (message: string, details: Record<string, unknown> = {}) =>
  new ProxyProtocolError(Codes.MALFORMED, `malformed PROXY v2 header: ${message}`, {
    version: 2,
    ...details,
  });

/** Checks byte `i` (< 16) of a v2 header as soon as it arrives, so garbage is refused early. */
export function checkV2Byte(buf: Uint8Array, i: number): void {
  const b = buf[i]!;
  if (i < 12) {
    if (b !== V2_SIGNATURE[i]) {
      throw new ProxyProtocolError(
        Codes.INVALID,
        'not a PROXY protocol header: the v2 signature does not match',
        { offset: i },
      );
    }
  } else if (i === 12) {
    if (b >> 4 !== 2)
      throw malformed(`version ${b >> 4} (the high nibble of byte 13 must be 2)`, { offset: i });
    if ((b & 0xf) > 1)
      throw malformed(`command 0x${(b & 0xf).toString(16)} (0 LOCAL or 1 PROXY)`, { offset: i });
  } else if (i === 13) {
    if (!V2_FAMILY_BYTES.has(b))
      throw malformed(
        `family/transport byte 0x${b.toString(16).padStart(2, '0')} is not one the specification defines`,
        { offset: i },
      );
  }
}

function decodeUnixPath(b: Buffer): string {
  // An abstract socket starts with a NUL; a filesystem path ends at its first NUL.
  if (b[0] === 0) {
    let end = b.length;
    while (end > 1 && b[end - 1] === 0) end--;
    return end > 1 ? `\0${b.subarray(1, end).toString('utf8')}` : '';
  }
  const nul = b.indexOf(0);
  return b.subarray(0, nul < 0 ? b.length : nul).toString('utf8');
}

/** Decodes a complete v2 header: `buf` is exactly 16 + its length field bytes. */
export function decodeV2(buf: Buffer): ProxyHeader {
  for (let i = 0; i < V2_FIXED_LENGTH - 2; i++) checkV2Byte(buf, i);
  const total = V2_FIXED_LENGTH + buf.readUInt16BE(14);
  if (buf.length !== total) throw malformed(`expected ${total} bytes, got ${buf.length}`);
  const command = (buf[12]! & 0xf) === 0 ? 'local' : 'proxy';
  const family = FAMILIES[buf[13]! >> 4]!;
  const transport = TRANSPORTS[buf[13]! & 0xf]!;
  const header: ProxyHeader = { version: 2, command, family, transport, tlvs: [], length: total };

  let at = V2_FIXED_LENGTH;
  if (family !== 'unspec') {
    const need = V2_ADDRESS_LENGTH[family];
    if (total - at < need)
      throw malformed(`family ${family} needs ${need} address bytes but the header has ${total - at}`);
    if (family === 'unix') {
      header.source = { path: decodeUnixPath(buf.subarray(at, at + UNIX_PATH_LENGTH)) };
      header.destination = {
        path: decodeUnixPath(buf.subarray(at + UNIX_PATH_LENGTH, at + 2 * UNIX_PATH_LENGTH)),
      };
    } else {
      const n = family === 'inet' ? 4 : 16;
      const text = family === 'inet' ? bytesToIpv4 : bytesToIpv6;
      header.source = { address: text(buf, at), port: buf.readUInt16BE(at + 2 * n) };
      header.destination = { address: text(buf, at + n), port: buf.readUInt16BE(at + 2 * n + 2) };
    }
    at += need;
  }

  const raw = splitTlvs(buf, at, total);
  for (const t of raw) {
    if (t.type !== PP2_TYPE.CRC32C) continue;
    if (t.value.length !== 4) throw malformed(`PP2_TYPE_CRC32C is ${t.value.length} bytes; it must be 4`);
    const sent = t.value.readUInt32BE(0);
    const copy = Buffer.from(buf);
    copy.fill(0, t.at + 3, t.at + 7);
    const computed = crc32c(copy);
    if (computed !== sent) {
      throw new ProxyProtocolError(
        Codes.CHECKSUM,
        `PROXY v2 header checksum mismatch: PP2_TYPE_CRC32C says 0x${sent.toString(16).padStart(8, '0')}, the header sums to 0x${computed.toString(16).padStart(8, '0')}`,
        { version: 2, sent, computed },
      );
    }
    header.crc32c ??= sent;
  }
  const fields = decodeTlvs(raw);
  Object.assign(header, fields);
  return header;
}

function inferFamily(source?: ProxyEndpoint, destination?: ProxyEndpoint): ProxyFamily {
  const ends = [source, destination].filter((e): e is ProxyEndpoint => e !== undefined);
  if (!ends.length) return 'unspec';
  if (ends.some((e) => !isInetEndpoint(e))) return 'unix';
  return ends.every((e) => isInetEndpoint(e) && isIPv4(e.address)) ? 'inet' : 'inet6';
}

function encodeAddresses(family: ProxyFamily, source?: ProxyEndpoint, destination?: ProxyEndpoint): Buffer {
  if (family === 'unspec') return Buffer.alloc(0);
  if (!source || !destination)
    throw new ProxyProtocolError(Codes.ENCODE, `family ${family} needs both a source and a destination`, {});
  const out = Buffer.alloc(V2_ADDRESS_LENGTH[family]);
  if (family === 'unix') {
    [source, destination].forEach((e, i) => {
      if (isInetEndpoint(e))
        throw new ProxyProtocolError(Codes.ENCODE, 'family unix needs { path } endpoints', {});
      const path = (e as UnixEndpoint).path;
      const bytes = Buffer.from(path, 'utf8');
      if (bytes.length > UNIX_PATH_LENGTH)
        throw new ProxyProtocolError(
          Codes.ENCODE,
          `UNIX path is ${bytes.length} bytes; at most ${UNIX_PATH_LENGTH} fit`,
          { path },
        );
      bytes.copy(out, i * UNIX_PATH_LENGTH);
    });
    return out;
  }
  const n = family === 'inet' ? 4 : 16;
  [source, destination].forEach((e, i) => {
    if (!isInetEndpoint(e))
      throw new ProxyProtocolError(Codes.ENCODE, `family ${family} needs { address, port } endpoints`, {});
    const ok = family === 'inet' ? isIPv4(e.address) : isIPv6(e.address) || isIPv4(e.address);
    if (!ok || e.address.includes('%'))
      throw new ProxyProtocolError(
        Codes.ENCODE,
        `"${e.address}" is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`,
        { address: e.address },
      );
    if (!Number.isInteger(e.port) || e.port < 0 || e.port > 65535)
      throw new ProxyProtocolError(Codes.ENCODE, `port ${e.port} is not an integer 0..65535`, {
        port: e.port,
      });
    if (family === 'inet') ipv4ToBytes(e.address, out, i * n);
    else ipv6ToBytes(toIpv6(e.address), out, i * n);
    out.writeUInt16BE(e.port, 2 * n + 2 * i);
  });
  return out;
}

/**
 * Encodes a v2 header. LOCAL carries no addresses (AF_UNSPEC), as the specification asks of
 * senders; a v4 endpoint paired with a v6 one is sent as INET6 with the v4 address mapped.
 */
export function encodeV2(input: ProxyHeaderInput): Buffer {
  const command = input.command ?? 'proxy';
  const family =
    command === 'local' ? 'unspec' : (input.family ?? inferFamily(input.source, input.destination));
  const transport = family === 'unspec' ? 'unspec' : (input.transport ?? 'stream');
  if (family !== 'unspec' && transport === 'unspec')
    throw new ProxyProtocolError(Codes.ENCODE, `family ${family} needs transport stream or dgram`, {});
  const addresses = encodeAddresses(family, input.source, input.destination);
  const parts = encodeTlvs(input, input.tlvs);
  const crcAt = input.crc32c ? addresses.length : -1;
  if (input.crc32c) parts.unshift(tlv(PP2_TYPE.CRC32C, Buffer.alloc(4)));
  const body = Buffer.concat([addresses, ...parts]);
  if (body.length > 0xffff)
    throw new ProxyProtocolError(
      Codes.ENCODE,
      `PROXY v2 header body is ${body.length} bytes; the length field allows at most 65535`,
      { length: body.length },
    );
  const out = Buffer.allocUnsafe(V2_FIXED_LENGTH + body.length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = 0x20 | (command === 'local' ? 0 : 1);
  out[13] = (FAMILY_CODE[family] << 4) | TRANSPORT_CODE[transport];
  out.writeUInt16BE(body.length, 14);
  body.copy(out, V2_FIXED_LENGTH);
  if (crcAt >= 0) out.writeUInt32BE(crc32c(out), V2_FIXED_LENGTH + crcAt + 3);
  return out;
}
