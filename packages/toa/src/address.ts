import { isIPv4, isIPv6 } from 'node:net';

export function ipv4ToBytes(text: string, out: Uint8Array, at: number): void {
  text.split('.').forEach((p, i) => (out[at + i] = Number(p)));
}

export function ipv6ToBytes(text: string, out: Uint8Array, at: number): void {
  let s = text;
  let tail: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const b = new Uint8Array(4);
    ipv4ToBytes(v4[1]!, b, 0);
    tail = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!];
    s = s.slice(0, -v4[1]!.length);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const [head, rest] = s.includes('::') ? (s.split('::') as [string, string]) : [s, undefined];
  const left = parse(head);
  const right = rest === undefined ? [] : parse(rest);
  const gap =
    rest === undefined ? [] : new Array<number>(8 - left.length - right.length - tail.length).fill(0);
  [...left, ...gap, ...right, ...tail].forEach((g, i) => {
    out[at + 2 * i] = g >> 8;
    out[at + 2 * i + 1] = g & 0xff;
  });
}

export function bytesToIpv4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** RFC 5952 text; IPv4-mapped as `::ffff:a.b.c.d` (how Node reports them). */
export function bytesToIpv6(b: Uint8Array, at: number): string {
  const g = Array.from({ length: 8 }, (_, i) => (b[at + 2 * i]! << 8) | b[at + 2 * i + 1]!);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${bytesToIpv4(b, at + 12)}`;
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j === i ? i + 1 : j;
  }
  const hex = g.map((x) => x.toString(16));
  return best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function ipFamily(text: string): 4 | 6 | 0 {
  if (isIPv4(text)) return 4;
  if (isIPv6(text) && !text.includes('%')) return 6;
  return 0;
}
