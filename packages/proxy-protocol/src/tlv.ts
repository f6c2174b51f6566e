import { PP2_SUBTYPE_SSL, PP2_TYPE, UNIQUE_ID_MAX_LENGTH } from './constants.js';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import type { ProxyTlv, ProxyTlvFields, SslInfo } from './types.js';

const malformed = (message: string, details: Record<string, unknown> = {}) =>
  new ProxyProtocolError(Codes.MALFORMED, `malformed PROXY v2 header: ${message}`, {
    version: 2,
    ...details,
  });

/** Splits `buf[start, end)` into TLVs; they must fill it exactly (a partial TLV is an error). */
export function splitTlvs(
  buf: Buffer,
  start: number,
  end: number,
  where = 'TLV',
): { type: number; at: number; value: Buffer }[] {
  const out: { type: number; at: number; value: Buffer }[] = [];
  let i = start;
  while (i < end) {
    if (i + 3 > end)
      throw malformed(`${end - i} stray byte(s) where a ${where} header (3 bytes) was expected`, {
        offset: i,
      });
    const type = buf[i]!;
    const len = buf.readUInt16BE(i + 1);
    if (i + 3 + len > end)
      throw malformed(`${where} 0x${type.toString(16)} says ${len} bytes but only ${end - i - 3} remain`, {
        offset: i,
        type,
      });
    out.push({ type, at: i, value: buf.subarray(i + 3, i + 3 + len) });
    i += 3 + len;
  }
  return out;
}

const utf8 = (b: Buffer) => b.toString('utf8');

const SSL_STRINGS: [number, keyof SslInfo][] = [
  [PP2_SUBTYPE_SSL.VERSION, 'version'],
  [PP2_SUBTYPE_SSL.CN, 'cn'],
  [PP2_SUBTYPE_SSL.CIPHER, 'cipher'],
  [PP2_SUBTYPE_SSL.SIG_ALG, 'sigAlg'],
  [PP2_SUBTYPE_SSL.KEY_ALG, 'keyAlg'],
  [PP2_SUBTYPE_SSL.GROUP, 'group'],
  [PP2_SUBTYPE_SSL.SIG_SCHEME, 'sigScheme'],
];

export function decodeSsl(value: Buffer): SslInfo {
  if (value.length < 5)
    throw malformed(`PP2_TYPE_SSL is ${value.length} bytes; it needs at least 5 (client, verify)`);
  const ssl: SslInfo = { client: value[0]!, verify: value.readUInt32BE(1) };
  const others: ProxyTlv[] = [];
  for (const sub of splitTlvs(value, 5, value.length, 'SSL sub-TLV')) {
    const named = SSL_STRINGS.find(([t]) => t === sub.type);
    if (named && ssl[named[1]] === undefined)
      (ssl as unknown as Record<string, string>)[named[1]] = utf8(sub.value);
    else if (sub.type === PP2_SUBTYPE_SSL.CLIENT_CERT && ssl.clientCert === undefined)
      ssl.clientCert = Buffer.from(sub.value);
    else others.push({ type: sub.type, value: Buffer.from(sub.value) });
  }
  if (others.length) ssl.subTlvs = others;
  return ssl;
}

/**
 * Decodes the TLV area into the named fields; TLVs without a field (NOOP, custom, future, and
 * repeats of a named one) are returned in `tlvs`, in wire order.
 */
export function decodeTlvs(tlvs: { type: number; value: Buffer }[]): ProxyTlvFields & { tlvs: ProxyTlv[] } {
  const out: ProxyTlvFields & { tlvs: ProxyTlv[] } = { tlvs: [] };
  for (const { type, value } of tlvs) {
    if (type === PP2_TYPE.ALPN && out.alpn === undefined) out.alpn = Buffer.from(value);
    else if (type === PP2_TYPE.AUTHORITY && out.authority === undefined) out.authority = utf8(value);
    else if (type === PP2_TYPE.UNIQUE_ID && out.uniqueId === undefined) {
      if (value.length > UNIQUE_ID_MAX_LENGTH)
        throw malformed(
          `PP2_TYPE_UNIQUE_ID is ${value.length} bytes; at most ${UNIQUE_ID_MAX_LENGTH} are allowed`,
        );
      out.uniqueId = Buffer.from(value);
    } else if (type === PP2_TYPE.SSL && out.ssl === undefined) out.ssl = decodeSsl(value);
    else if (type === PP2_TYPE.NETNS && out.netns === undefined) out.netns = utf8(value);
    else if (type !== PP2_TYPE.CRC32C) out.tlvs.push({ type, value: Buffer.from(value) });
  }
  return out;
}

export function tlv(type: number, value: Uint8Array): Buffer {
  if (!Number.isInteger(type) || type < 0 || type > 0xff)
    throw new ProxyProtocolError(Codes.ENCODE, `TLV type ${type} is not a byte`, { type });
  if (value.length > 0xffff)
    throw new ProxyProtocolError(
      Codes.ENCODE,
      `TLV 0x${type.toString(16)} value is ${value.length} bytes; at most 65535 fit`,
      { type },
    );
  const b = Buffer.allocUnsafe(3 + value.length);
  b[0] = type;
  b.writeUInt16BE(value.length, 1);
  b.set(value, 3);
  return b;
}

export function encodeSsl(ssl: SslInfo): Buffer {
  const head = Buffer.allocUnsafe(5);
  if (!Number.isInteger(ssl.client) || ssl.client < 0 || ssl.client > 0xff)
    throw new ProxyProtocolError(Codes.ENCODE, 'ssl.client must be a byte (PP2_CLIENT_* bits)', {});
  if (!Number.isInteger(ssl.verify) || ssl.verify < 0 || ssl.verify > 0xffffffff)
    throw new ProxyProtocolError(Codes.ENCODE, 'ssl.verify must be a 32-bit unsigned integer', {});
  head[0] = ssl.client;
  head.writeUInt32BE(ssl.verify, 1);
  const parts: Buffer[] = [head];
  for (const [type, key] of SSL_STRINGS) {
    const v = ssl[key];
    if (typeof v === 'string') parts.push(tlv(type, Buffer.from(v, 'utf8')));
  }
  if (ssl.clientCert) parts.push(tlv(PP2_SUBTYPE_SSL.CLIENT_CERT, ssl.clientCert));
  for (const s of ssl.subTlvs ?? []) parts.push(tlv(s.type, s.value));
  return Buffer.concat(parts);
}

/** The named fields in type order, then the extra TLVs; the CRC32C TLV is placed by the caller. */
export function encodeTlvs(fields: ProxyTlvFields, extra: ProxyTlv[] = []): Buffer[] {
  const parts: Buffer[] = [];
  if (fields.alpn) parts.push(tlv(PP2_TYPE.ALPN, fields.alpn));
  if (fields.authority !== undefined)
    parts.push(tlv(PP2_TYPE.AUTHORITY, Buffer.from(fields.authority, 'utf8')));
  if (fields.uniqueId) {
    if (fields.uniqueId.length > UNIQUE_ID_MAX_LENGTH) {
      throw new ProxyProtocolError(
        Codes.ENCODE,
        `uniqueId is ${fields.uniqueId.length} bytes; PP2_TYPE_UNIQUE_ID allows at most ${UNIQUE_ID_MAX_LENGTH}`,
        {},
      );
    }
    parts.push(tlv(PP2_TYPE.UNIQUE_ID, fields.uniqueId));
  }
  if (fields.ssl) parts.push(tlv(PP2_TYPE.SSL, encodeSsl(fields.ssl)));
  if (fields.netns !== undefined) parts.push(tlv(PP2_TYPE.NETNS, Buffer.from(fields.netns, 'utf8')));
  for (const t of extra) {
    if (t.type === PP2_TYPE.CRC32C)
      throw new ProxyProtocolError(
        Codes.ENCODE,
        'ask for a checksum with `crc32c: true`, not a raw PP2_TYPE_CRC32C TLV',
        {},
      );
    parts.push(tlv(t.type, t.value));
  }
  return parts;
}
