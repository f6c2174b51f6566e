import { describe, expect, it } from 'vitest';
import {
  encodeProxyHeader,
  ProxyProtocolParser,
  ProxyProtocolErrorCodes as Codes,
  V2_MAX_LENGTH,
  type ParseResult,
} from '@fulcrum/proxy-protocol';

function feed(
  parser: ProxyProtocolParser,
  chunks: Buffer[],
): { result: ParseResult & { done: true }; rest: Buffer } {
  const rest: Buffer[] = [];
  let result: (ParseResult & { done: true }) | undefined;
  for (const c of chunks) {
    if (result) {
      rest.push(c);
      continue;
    }
    const r = parser.push(c);
    if (r.done) {
      result = r;
      rest.push(r.rest);
    }
  }
  if (!result) throw new Error('header never completed');
  return { result, rest: Buffer.concat(rest) };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

const headers = {
  v1: encodeProxyHeader({
    version: 1,
    source: { address: '2001:db8::7', port: 40000 },
    destination: { address: '2001:db8::1', port: 443 },
  }),
  v2: encodeProxyHeader({
    version: 2,
    source: { address: '203.0.113.7', port: 51000 },
    destination: { address: '192.0.2.1', port: 443 },
    crc32c: true,
    authority: 'example.com',
    uniqueId: Buffer.from('conn-1'),
  }),
};
const payload = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');

describe('streaming parser', () => {
  for (const [name, header] of Object.entries(headers)) {
    it(`${name}: same header and untouched payload at every split point`, () => {
      const wire = Buffer.concat([header, payload]);
      const whole = feed(new ProxyProtocolParser(), [wire]);
      for (let cut = 1; cut < wire.length; cut++) {
        const { result, rest } = feed(new ProxyProtocolParser(), [wire.subarray(0, cut), wire.subarray(cut)]);
        expect(result.header).toEqual(whole.result.header);
        expect(rest.equals(payload)).toBe(true);
      }
    });

    it(`${name}: one byte at a time`, () => {
      const wire = Buffer.concat([header, payload]);
      const chunks = [...wire].map((b) => Buffer.from([b]));
      const { result, rest } = feed(new ProxyProtocolParser(), chunks);
      expect(result.header.length).toBe(header.length);
      expect(rest.equals(payload)).toBe(true);
    });
  }

  it('hands back the rest as a view of the chunk, not a copy', () => {
    const wire = Buffer.concat([headers.v2, payload]);
    const r = new ProxyProtocolParser().push(wire);
    expect(r.done && r.rest.buffer).toBe(wire.buffer);
    expect(r.done && r.rest.byteOffset).toBe(wire.byteOffset + headers.v2.length);
  });

  it('refuses "GET /" at its first byte', () => {
    const p = new ProxyProtocolParser();
    expect(codeOf(() => p.push(Buffer.from('G')))).toBe(Codes.INVALID);
    expect(codeOf(() => p.push(Buffer.from('ET /')))).toBe(Codes.INVALID);
  });

  it('refuses a TLS ClientHello at its first byte', () => {
    expect(codeOf(() => new ProxyProtocolParser().push(Buffer.from([0x16, 0x03, 0x01])))).toBe(Codes.INVALID);
  });

  it('refuses "PUT" at the byte where it leaves "PROXY "', () => {
    const p = new ProxyProtocolParser();
    expect(p.push(Buffer.from('P')).done).toBe(false);
    expect(codeOf(() => p.push(Buffer.from('U')))).toBe(Codes.INVALID);
  });

  it('refuses a v2 signature at its first wrong byte', () => {
    const p = new ProxyProtocolParser();
    expect(p.push(Buffer.from([0x0d, 0x0a])).done).toBe(false);
    expect(codeOf(() => p.push(Buffer.from([0x0a])))).toBe(Codes.INVALID);
  });

  it('cuts a v1 line with no CRLF at 107 bytes and never holds more', () => {
    const p = new ProxyProtocolParser();
    const line = Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`);
    let thrown: string | undefined;
    let consumed = 0;
    for (const b of line) {
      consumed++;
      thrown = codeOf(() => p.push(Buffer.from([b])));
      expect(p.buffered).toBeLessThanOrEqual(107);
      if (thrown) break;
    }
    expect(thrown).toBe(Codes.TOO_LONG);
    expect(consumed).toBe(107);
  });

  it('a 107-byte line whose CRLF would end at byte 108 is too long', () => {
    const line = Buffer.from(`PROXY UNKNOWN ${'f'.repeat(92)}\r\n`);
    expect(line.length).toBe(108);
    expect(codeOf(() => new ProxyProtocolParser().push(line))).toBe(Codes.TOO_LONG);
  });

  it('a v2 header that announces more than the receiver allows is refused at byte 16', () => {
    const h = Buffer.from(headers.v2);
    h.writeUInt16BE(4000, 14);
    expect(codeOf(() => new ProxyProtocolParser({ maxV2Length: 1024 }).push(h.subarray(0, 16)))).toBe(
      Codes.TOO_LONG,
    );
  });

  it('reads the largest v2 header there is (16 + 65535 bytes) in small chunks', () => {
    const s = { address: '10.1.1.1', port: 9 };
    const header = encodeProxyHeader({
      version: 2,
      source: s,
      destination: s,
      tlvs: [{ type: 0xe0, value: Buffer.alloc(65535 - 12 - 3, 7) }],
    });
    expect(header.length).toBe(V2_MAX_LENGTH);
    const chunks: Buffer[] = [];
    for (let i = 0; i < header.length; i += 1400) chunks.push(header.subarray(i, i + 1400));
    const p = new ProxyProtocolParser();
    const { result } = feed(p, [...chunks, payload]);
    expect(result.header.tlvs[0]!.value.length).toBe(65535 - 15);
  });

  it('refuses a version it was not configured for', () => {
    expect(codeOf(() => new ProxyProtocolParser({ versions: [2] }).push(headers.v1))).toBe(Codes.VERSION);
    expect(codeOf(() => new ProxyProtocolParser({ versions: [1] }).push(headers.v2))).toBe(Codes.VERSION);
    expect(codeOf(() => new ProxyProtocolParser({ versions: [2] }).push(Buffer.from('GET')))).toBe(
      Codes.INVALID,
    );
  });

  it('end() reports a header cut short, and nothing for an empty stream', () => {
    const p = new ProxyProtocolParser();
    p.push(headers.v2.subarray(0, 20));
    expect(codeOf(() => p.end())).toBe(Codes.TRUNCATED);
    expect(codeOf(() => new ProxyProtocolParser().end())).toBeUndefined();
  });

  it('stays failed after an error', () => {
    const p = new ProxyProtocolParser();
    expect(codeOf(() => p.push(Buffer.from('X')))).toBe(Codes.INVALID);
    expect(codeOf(() => p.push(headers.v2))).toBe(Codes.INVALID);
  });

  it('after the header, later chunks come back whole', () => {
    const p = new ProxyProtocolParser();
    p.push(headers.v1);
    const r = p.push(payload);
    expect(r.done && r.rest.equals(payload)).toBe(true);
  });
});
