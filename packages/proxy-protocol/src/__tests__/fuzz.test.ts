import { describe, expect, it } from 'vitest';
import {
  decodeProxyHeader,
  encodeProxyHeader,
  isProxyProtocolError,
  ProxyProtocolParser,
  V2_MAX_LENGTH,
  V2_SIGNATURE,
  type ProxyHeaderInput,
} from '@fulcrum/proxy-protocol';

// A seeded generator, so that a failure prints a seed that reproduces it.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.FULCRUM_FUZZ_SEED ?? 0x5eed);
const rnd = prng(SEED);
const int = (n: number) => Math.floor(rnd() * n);
const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => int(256)));

const seeds: ProxyHeaderInput[] = [
  { version: 1, source: { address: '192.0.2.1', port: 1 }, destination: { address: '192.0.2.2', port: 2 } },
  { version: 1, source: { address: '2001:db8::1', port: 65535 }, destination: { address: '::1', port: 0 } },
  { version: 1, command: 'local' },
  {
    version: 2,
    source: { address: '192.0.2.1', port: 1 },
    destination: { address: '192.0.2.2', port: 2 },
    crc32c: true,
    uniqueId: Buffer.from('id'),
  },
  {
    version: 2,
    transport: 'dgram',
    source: { address: '2001:db8::1', port: 5 },
    destination: { address: '2001:db8::2', port: 6 },
    alpn: Buffer.from('h2'),
  },
  { version: 2, source: { path: '/tmp/a' }, destination: { path: '/tmp/b' }, netns: 'ns' },
  { version: 2, command: 'local', authority: 'example.com' },
  {
    version: 2,
    source: { address: '10.0.0.1', port: 3 },
    destination: { address: '10.0.0.2', port: 4 },
    ssl: { client: 7, verify: 0, version: 'TLSv1.3', cn: 'x' },
  },
];
const valid = seeds.map(encodeProxyHeader);

function mutate(b: Buffer): Buffer {
  const out = Buffer.from(b);
  const kind = int(5);
  if (kind === 0) for (let k = 1 + int(4); k > 0; k--) out[int(out.length)] = int(256);
  if (kind === 1) return out.subarray(0, int(out.length));
  if (kind === 2)
    return Buffer.concat([out.subarray(0, int(out.length)), bytes(int(8)), out.subarray(int(out.length))]);
  if (kind === 3 && out.length > 16 && out[0] === 0x0d) out.writeUInt16BE(int(0x10000), 14);
  if (kind === 4) {
    const at = int(out.length);
    out[at] = (out[at] ?? 0) ^ (1 << int(8));
  }
  return out;
}

function chunked(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length;) {
    const n = 1 + int(rnd() < 0.5 ? 4 : 64);
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** Streams `data` in random chunks; the only acceptable outcomes are a header, "need more", or a coded error. */
function run(data: Buffer): 'header' | 'incomplete' | 'error' {
  const p = new ProxyProtocolParser();
  try {
    for (const c of chunked(data)) {
      const r = p.push(c);
      expect(p.buffered).toBeLessThanOrEqual(V2_MAX_LENGTH);
      if (r.done) return 'header';
    }
    p.end();
    return 'incomplete';
  } catch (e) {
    if (!isProxyProtocolError(e))
      throw new Error(`seed ${SEED}: a non-coded error escaped for ${data.toString('hex')}: ${String(e)}`, {
        cause: e,
      });
    expect(e.code).toMatch(/^FULCRUM_PROXY_PROTOCOL_/);
    return 'error';
  }
}

describe(`decoder fuzz (seed ${SEED})`, () => {
  it('random bytes: only headers or coded errors, quickly', () => {
    const started = Date.now();
    const outcomes = { header: 0, incomplete: 0, error: 0 };
    for (let i = 0; i < 20_000; i++) {
      const prefix = [
        Buffer.alloc(0),
        Buffer.from('PROXY '),
        V2_SIGNATURE,
        Buffer.concat([V2_SIGNATURE, Buffer.from([0x21])]),
      ][int(4)]!;
      outcomes[run(Buffer.concat([prefix, bytes(int(160))]))]++;
    }
    expect(outcomes.error).toBeGreaterThan(15_000);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('mutated valid headers: whatever decodes re-encodes to the same addresses and TLVs', () => {
    const outcomes = { header: 0, incomplete: 0, error: 0 };
    for (let i = 0; i < 20_000; i++) {
      const data = mutate(valid[int(valid.length)]!);
      const outcome = run(data);
      outcomes[outcome]++;
      if (outcome !== 'header') continue;
      const { header } = decodeProxyHeader(data);
      if (header.command !== 'proxy' || header.version === 1) continue;
      const { header: again } = decodeProxyHeader(
        encodeProxyHeader({ ...header, crc32c: header.crc32c !== undefined }),
      );
      for (const k of [
        'family',
        'transport',
        'source',
        'destination',
        'alpn',
        'authority',
        'uniqueId',
        'ssl',
        'netns',
        'tlvs',
      ] as const) {
        expect(again[k], `seed ${SEED}, ${data.toString('hex')}: ${k}`).toEqual(header[k]);
      }
    }
    expect(outcomes.header).toBeGreaterThan(100);
    expect(outcomes.error).toBeGreaterThan(1000);
  });

  it('endless garbage after a valid start is cut at the limit, holding bounded memory', () => {
    const p = new ProxyProtocolParser();
    p.push(Buffer.from('PROXY TCP4 '));
    let thrown: unknown;
    for (let i = 0; i < 1000 && !thrown; i++) {
      try {
        p.push(Buffer.alloc(64, 0x31));
      } catch (e) {
        thrown = e;
      }
    }
    expect((thrown as { code?: string }).code).toBe('FULCRUM_PROXY_PROTOCOL_TOO_LONG');

    const v2 = new ProxyProtocolParser();
    const head = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    v2.push(head);
    let pushed = head.length;
    let ended: unknown;
    for (let i = 0; i < 2000 && !ended; i++) {
      try {
        v2.push(Buffer.alloc(64, 0xe0));
        pushed += 64;
      } catch (e) {
        ended = e;
      }
      expect(v2.buffered).toBeLessThanOrEqual(V2_MAX_LENGTH);
    }
    // The announced 65551 bytes arrive, then the TLV area (0xe0 0xe0e0 …) is found not to add up.
    expect((ended as { code?: string }).code).toBe('FULCRUM_PROXY_PROTOCOL_MALFORMED');
    expect(pushed).toBeLessThan(V2_MAX_LENGTH);
  });
});
