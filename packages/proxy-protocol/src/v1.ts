import { isIPv4 } from 'node:net';
import { canonicalAddress, hexIpv6, isPlainIpv6, isStrictIpv4, parseStrictPort, toIpv6 } from './address.js';
import { V1_MAX_LENGTH } from './constants.js';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import type { InetEndpoint, ProxyHeader, ProxyHeaderInput } from './types.js';
import { isInetEndpoint } from './types.js';

const malformed = (message: string, line: string) =>
  new ProxyProtocolError(Codes.MALFORMED, `malformed PROXY v1 header: ${message}`, { version: 1, line });

/**
 * Decodes one complete v1 line, CRLF included (section 2.1). Anything that does not match the
 * grammar exactly is refused, as the specification asks.
 */
export function decodeV1(line: Buffer): ProxyHeader {
  const text = line.toString('latin1');
  if (!text.startsWith('PROXY ') || !text.endsWith('\r\n') || line.length > V1_MAX_LENGTH) {
    throw malformed('not a "PROXY …\\r\\n" line of at most 107 bytes', text);
  }
  const body = text.slice(6, -2);
  // The specification lets UNKNOWN carry anything before the CRLF, and the receiver ignores it.
  if (body === 'UNKNOWN' || body.startsWith('UNKNOWN ')) {
    return {
      version: 1,
      command: 'proxy',
      family: 'unspec',
      transport: 'unspec',
      tlvs: [],
      length: line.length,
    };
  }
  const parts = body.split(' ');
  const proto = parts[0];
  if (proto !== 'TCP4' && proto !== 'TCP6')
    throw malformed(`unknown protocol "${proto}" (expected TCP4, TCP6 or UNKNOWN)`, text);
  if (parts.length !== 5)
    throw malformed('expected "<protocol> <src> <dst> <sport> <dport>" separated by single spaces', text);
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  const valid = proto === 'TCP4' ? isStrictIpv4 : isPlainIpv6;
  for (const a of [src, dst]) {
    if (!valid(a))
      throw malformed(
        `"${a}" is not an ${proto === 'TCP4' ? 'IPv4' : 'IPv6'} address as ${proto} requires`,
        text,
      );
  }
  const sp = parseStrictPort(sport);
  const dp = parseStrictPort(dport);
  for (const [p, n] of [
    [sport, sp],
    [dport, dp],
  ] as const) {
    if (Number.isNaN(n)) throw malformed(`"${p}" is not a port (decimal 0-65535, no leading zeroes)`, text);
  }
  return {
    version: 1,
    command: 'proxy',
    family: proto === 'TCP4' ? 'inet' : 'inet6',
    transport: 'stream',
    source: { address: canonicalAddress(src), port: sp },
    destination: { address: canonicalAddress(dst), port: dp },
    tlvs: [],
    length: line.length,
  };
}

function checkPort(port: number, which: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ProxyProtocolError(Codes.ENCODE, `${which} port ${port} is not an integer 0..65535`, { port });
  }
}

/**
 * Encodes a v1 line. LOCAL and `unspec` become `PROXY UNKNOWN\r\n`; a v4 endpoint paired with
 * a v6 one is sent as TCP6 with the v4 address mapped (`::ffff:a.b.c.d`), as HAProxy does.
 */
export function encodeV1(input: ProxyHeaderInput): Buffer {
  const hasTlvs = !!(
    input.alpn ||
    input.authority ||
    input.uniqueId ||
    input.ssl ||
    input.netns ||
    input.crc32c ||
    input.tlvs?.length
  );
  if (hasTlvs) throw new ProxyProtocolError(Codes.ENCODE, 'PROXY v1 cannot carry TLVs: use version 2', {});
  if (input.transport === 'dgram')
    throw new ProxyProtocolError(Codes.ENCODE, 'PROXY v1 carries TCP only: use version 2 for UDP', {});
  if (input.command === 'local' || input.family === 'unspec' || (!input.source && !input.destination)) {
    return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  }
  const { source, destination } = input;
  if (!isInetEndpoint(source) || !isInetEndpoint(destination)) {
    throw new ProxyProtocolError(
      Codes.ENCODE,
      'PROXY v1 needs an IP address and port for both source and destination (UNIX sockets need version 2)',
      {},
    );
  }
  const ends: InetEndpoint[] = [source, destination];
  for (const e of ends) {
    if (!isIPv4(e.address) && !isPlainIpv6(e.address))
      throw new ProxyProtocolError(Codes.ENCODE, `"${e.address}" is not an IP address`, {
        address: e.address,
      });
  }
  checkPort(source.port, 'source');
  checkPort(destination.port, 'destination');
  const v4 = ends.every((e) => isIPv4(e.address));
  if (input.family === 'inet' && !v4)
    throw new ProxyProtocolError(Codes.ENCODE, 'family "inet" was asked for, but an address is IPv6', {});
  const text = (e: InetEndpoint) => (v4 ? e.address : hexIpv6(toIpv6(e.address)));
  return Buffer.from(
    `PROXY ${v4 ? 'TCP4' : 'TCP6'} ${text(source)} ${text(destination)} ${source.port} ${destination.port}\r\n`,
    'latin1',
  );
}
