import { isIPv4, isIPv6 } from 'node:net';

const V4_OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
/** Dotted quad without leading zeroes (v1 forbids them so nobody reads octal). */
const STRICT_V4 = new RegExp(`^${V4_OCTET}(?:\\.${V4_OCTET}){3}$`);
const STRICT_PORT = /^(?:0|[1-9]\d{0,4})$/;

export function isStrictIpv4(text: string): boolean {
  return STRICT_V4.test(text);
}

/** An IPv6 address as inet_pton reads it: no zone index, at most 39 characters of hex groups (an embedded IPv4 tail allowed). */
export function isPlainIpv6(text: string): boolean {
  return !text.includes('%') && isIPv6(text);
}

/** A v1 port: decimal 0..65535 without leading zeroes; NaN otherwise. */
export function parseStrictPort(text: string): number {
  if (!STRICT_PORT.test(text)) return NaN;
  const n = Number(text);
  return n <= 65535 ? n : NaN;
}

export function ipv4ToBytes(text: string, out: Uint8Array = new Uint8Array(4), at = 0): Uint8Array {
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
  return out;
}

export function ipv6ToBytes(text: string, out: Uint8Array = new Uint8Array(16), at = 0): Uint8Array {
  let s = text;
  const groups: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const b = ipv4ToBytes(v4[1]!);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const zeros = 8 - left.length - right.length - tail.length;
  groups.push(...left, ...(rest === undefined ? [] : new Array<number>(zeros).fill(0)), ...right, ...tail);
  for (let i = 0; i < 8; i++) {
    out[at + 2 * i] = (groups[i]! >> 8) & 0xff;
    out[at + 2 * i + 1] = groups[i]! & 0xff;
  }
  return out;
}

export function bytesToIpv4(b: Uint8Array, at = 0): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * RFC 5952 text: lower case, the longest run of two or more zero groups as `::`; IPv4-mapped
 * addresses as `::ffff:a.b.c.d`, which is how Node reports them in `remoteAddress`.
 */
export function bytesToIpv6(b: Uint8Array, at = 0, dottedMapped = true): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!);
  if (dottedMapped && g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff)
    return `::ffff:${bytesToIpv4(b, at + 12)}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/** Node's text for an address: IPv6 re-rendered in RFC 5952 form, IPv4 as is. */
export function canonicalAddress(text: string): string {
  return isIPv4(text) ? text : bytesToIpv6(ipv6ToBytes(text));
}

/** IPv6 in hex groups only (v1's grammar has no dotted tail), compressed. */
export function hexIpv6(text: string): string {
  return bytesToIpv6(ipv6ToBytes(text), 0, false);
}

/** `::ffff:a.b.c.d` for an IPv4 address, so that a v4 and a v6 endpoint fit one header. */
export function toIpv6(text: string): string {
  return isIPv4(text) ? `::ffff:${text}` : text;
}
