import { describe, expect, it } from 'vitest';
import {
  crc32c,
  decodeProxyHeader,
  encodeProxyHeader,
  PP2_CLIENT,
  PP2_SUBTYPE_SSL,
  PP2_TYPE,
  ProxyProtocolErrorCodes as Codes,
  type ProxyHeaderInput,
} from '@fulcrum/proxy-protocol';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const SIG = '0d0a0d0a000d0a515549540a';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}

describe('CRC-32C', () => {
  it('matches the RFC 3720 / iSCSI check values', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
  });
});

describe('v1 byte-exact', () => {
  const table: [string, ProxyHeaderInput, string][] = [
    [
      'TCP4, the specification example',
      {
        version: 1,
        source: { address: '192.168.0.1', port: 56324 },
        destination: { address: '192.168.0.11', port: 443 },
      },
      'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n',
    ],
    [
      'TCP6',
      {
        version: 1,
        source: { address: '2001:db8::1', port: 1 },
        destination: { address: '2001:db8::2', port: 65535 },
      },
      'PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n',
    ],
    [
      'v4 with v6 maps the v4 address',
      { version: 1, source: { address: '10.0.0.1', port: 5 }, destination: { address: '::1', port: 6 } },
      'PROXY TCP6 ::ffff:a00:1 ::1 5 6\r\n',
    ],
    ['LOCAL becomes UNKNOWN', { version: 1, command: 'local' }, 'PROXY UNKNOWN\r\n'],
    ['no addresses becomes UNKNOWN', { version: 1 }, 'PROXY UNKNOWN\r\n'],
  ];
  it.each(table)('%s', (_name, input, wire) => {
    expect(encodeProxyHeader(input).toString('latin1')).toBe(wire);
  });

  it('decodes the longest line the specification allows (107 bytes)', () => {
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const line = `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`;
    expect(line.length).toBe(107);
    const { header, rest } = decodeProxyHeader(Buffer.from(line + 'tail'));
    expect(header).toMatchObject({ version: 1, family: 'unspec', length: 107 });
    expect(rest.toString()).toBe('tail');
  });

  it('decodes TCP6 to RFC 5952 text and keeps the payload', () => {
    const { header, rest } = decodeProxyHeader(
      Buffer.from('PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::1 0 80\r\nGET / HTTP/1.0\r\n'),
    );
    expect(header).toMatchObject({
      version: 1,
      command: 'proxy',
      family: 'inet6',
      transport: 'stream',
      source: { address: '2001:db8::1', port: 0 },
      destination: { address: '::1', port: 80 },
    });
    expect(rest.toString()).toBe('GET / HTTP/1.0\r\n');
  });

  const bad: [string, string, string][] = [
    ['leading zero in an IPv4 octet', 'PROXY TCP4 01.2.3.4 1.2.3.4 1 2\r\n', Codes.MALFORMED],
    ['leading zero in a port', 'PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n', Codes.MALFORMED],
    ['port above 65535', 'PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n', Codes.MALFORMED],
    ['IPv6 under TCP4', 'PROXY TCP4 ::1 ::1 1 2\r\n', Codes.MALFORMED],
    ['IPv4 under TCP6', 'PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n', Codes.MALFORMED],
    ['zone index', 'PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', Codes.MALFORMED],
    ['two spaces', 'PROXY TCP4  1.2.3.4 1.2.3.4 1 2\r\n', Codes.MALFORMED],
    ['a missing field', 'PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n', Codes.MALFORMED],
    ['an unknown protocol', 'PROXY UDP4 1.2.3.4 1.2.3.4 1 2\r\n', Codes.MALFORMED],
    ['LF alone', 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n', Codes.MALFORMED],
    ['CR alone', 'PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX', Codes.MALFORMED],
    ['lower-case proxy', 'proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n', Codes.INVALID],
    ['an HTTP request', 'GET / HTTP/1.1\r\n', Codes.INVALID],
    ['PUT, which starts like PROXY', 'PUT / HTTP/1.1\r\n', Codes.INVALID],
    ['no CRLF in 107 bytes', `PROXY UNKNOWN ${'x'.repeat(120)}\r\n`, Codes.TOO_LONG],
    ['an unfinished line', 'PROXY TCP4 1.2.3.4', Codes.TRUNCATED],
  ];
  it.each(bad)('refuses %s', (_name, wire, code) => {
    expect(codeOf(() => decodeProxyHeader(Buffer.from(wire, 'latin1')))).toBe(code);
  });

  it('refuses to encode what v1 cannot say', () => {
    const s = { address: '1.2.3.4', port: 1 };
    expect(
      codeOf(() => encodeProxyHeader({ version: 1, source: s, destination: s, transport: 'dgram' })),
    ).toBe(Codes.ENCODE);
    expect(codeOf(() => encodeProxyHeader({ version: 1, source: s, destination: s, authority: 'x' }))).toBe(
      Codes.ENCODE,
    );
    expect(
      codeOf(() => encodeProxyHeader({ version: 1, source: { path: '/a' }, destination: { path: '/b' } })),
    ).toBe(Codes.ENCODE);
    expect(
      codeOf(() =>
        encodeProxyHeader({ version: 1, source: { address: '1.2.3.4', port: 70000 }, destination: s }),
      ),
    ).toBe(Codes.ENCODE);
  });
});

describe('v2 byte-exact', () => {
  it('TCP over IPv4', () => {
    const wire = encodeProxyHeader({
      version: 2,
      source: { address: '192.0.2.1', port: 12345 },
      destination: { address: '198.51.100.2', port: 443 },
    });
    expect(wire.toString('hex')).toBe(`${SIG}2111000c c0000201 c6336402 3039 01bb`.replace(/\s/g, ''));
  });

  it('UDP over IPv6', () => {
    const wire = encodeProxyHeader({
      version: 2,
      transport: 'dgram',
      source: { address: '2001:db8::1', port: 53 },
      destination: { address: '::1', port: 5353 },
    });
    expect(wire.toString('hex')).toBe(
      `${SIG}2122 0024 20010db8000000000000000000000001 00000000000000000000000000000001 0035 14e9`.replace(
        /\s/g,
        '',
      ),
    );
  });

  it('LOCAL carries no address', () => {
    expect(
      encodeProxyHeader({
        version: 2,
        command: 'local',
        source: { address: '1.2.3.4', port: 1 },
        destination: { address: '1.2.3.4', port: 2 },
      }).toString('hex'),
    ).toBe(`${SIG}20000000`);
  });

  it('UNIX stream: two 108-byte paths', () => {
    const wire = encodeProxyHeader({
      version: 2,
      source: { path: '/run/a.sock' },
      destination: { path: '\0abstract' },
    });
    expect(wire.length).toBe(16 + 216);
    expect(wire.subarray(12, 16).toString('hex')).toBe('213100d8');
    expect(wire.subarray(16, 27).toString()).toBe('/run/a.sock');
    expect(wire[27]).toBe(0);
    const { header } = decodeProxyHeader(wire);
    expect(header).toMatchObject({
      family: 'unix',
      transport: 'stream',
      source: { path: '/run/a.sock' },
      destination: { path: '\0abstract' },
    });
  });

  it('TLVs in type order, CRC32C first, with a checksum over the whole header', () => {
    const wire = encodeProxyHeader({
      version: 2,
      source: { address: '10.0.0.1', port: 1000 },
      destination: { address: '10.0.0.2', port: 80 },
      crc32c: true,
      alpn: Buffer.from('h2'),
      authority: 'example.com',
      uniqueId: Buffer.from('abc'),
      netns: 'blue',
      tlvs: [{ type: 0xe0, value: Buffer.from([1, 2]) }],
    });
    const body = wire.subarray(28);
    expect(body.subarray(0, 3).toString('hex')).toBe('030004');
    const zeroed = Buffer.from(wire);
    zeroed.fill(0, 31, 35);
    expect(wire.readUInt32BE(31)).toBe(crc32c(zeroed));
    expect(body.subarray(7).toString('hex')).toBe(
      [
        '010002',
        '6832',
        '02000b',
        Buffer.from('example.com').toString('hex'),
        '050003',
        '616263',
        '300004',
        Buffer.from('blue').toString('hex'),
        'e00002',
        '0102',
      ].join(''),
    );
    expect(wire.readUInt16BE(14)).toBe(wire.length - 16);
    const { header } = decodeProxyHeader(wire);
    expect(header.crc32c).toBe(wire.readUInt32BE(31));
    expect(header).toMatchObject({
      alpn: Buffer.from('h2'),
      authority: 'example.com',
      uniqueId: Buffer.from('abc'),
      netns: 'blue',
      tlvs: [{ type: 0xe0, value: Buffer.from([1, 2]) }],
    });
  });

  it('SSL with sub-TLVs, packed as the specification draws it', () => {
    const wire = encodeProxyHeader({
      version: 2,
      source: { address: '10.0.0.1', port: 1 },
      destination: { address: '10.0.0.2', port: 2 },
      ssl: {
        client: PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN,
        verify: 0,
        version: 'TLSv1.3',
        cn: 'client.example',
        cipher: 'TLS_AES_128_GCM_SHA256',
        clientCert: Buffer.from([0x30, 0x00]),
      },
    });
    const v = wire.subarray(28);
    expect(v[0]).toBe(PP2_TYPE.SSL);
    expect(v.readUInt16BE(1)).toBe(v.length - 3);
    expect(v.subarray(3, 8).toString('hex')).toBe('0300000000');
    expect(v[8]).toBe(PP2_SUBTYPE_SSL.VERSION);
    expect(v.subarray(11, 18).toString()).toBe('TLSv1.3');
    const { header } = decodeProxyHeader(wire);
    expect(header.ssl).toEqual({
      client: 3,
      verify: 0,
      version: 'TLSv1.3',
      cn: 'client.example',
      cipher: 'TLS_AES_128_GCM_SHA256',
      clientCert: Buffer.from([0x30, 0x00]),
    });
  });

  it('decodes a hand-written header: PROXY TCP4 with a NOOP, and a custom TLV', () => {
    const wire = hex(`${SIG} 21 11 0014 7f000001 7f000002 1f90 0050 04 0001 00 e1 0001 ff`);
    const { header, rest } = decodeProxyHeader(Buffer.concat([wire, Buffer.from('payload')]));
    expect(header).toMatchObject({
      version: 2,
      command: 'proxy',
      family: 'inet',
      source: { address: '127.0.0.1', port: 8080 },
      destination: { address: '127.0.0.2', port: 80 },
      length: 36,
    });
    expect(header.tlvs).toEqual([
      { type: PP2_TYPE.NOOP, value: Buffer.from([0]) },
      { type: 0xe1, value: Buffer.from([0xff]) },
    ]);
    expect(rest.toString()).toBe('payload');
  });

  it('LOCAL with an unspecified family and TLVs', () => {
    const { header } = decodeProxyHeader(hex(`${SIG} 20 00 0007 05 0004 69643432`));
    expect(header).toMatchObject({ command: 'local', family: 'unspec', uniqueId: Buffer.from('id42') });
    expect(header.source).toBeUndefined();
  });

  const bad: [string, string, string][] = [
    ['version 1 in the v2 header', `${SIG} 11 11 000c 7f000001 7f000001 0001 0002`, Codes.MALFORMED],
    ['command 2', `${SIG} 22 11 000c 7f000001 7f000001 0001 0002`, Codes.MALFORMED],
    ['family/transport 0x13', `${SIG} 21 13 000c 7f000001 7f000001 0001 0002`, Codes.MALFORMED],
    ['family 0x41', `${SIG} 21 41 000c 7f000001 7f000001 0001 0002`, Codes.MALFORMED],
    ['an address block too short for INET', `${SIG} 21 11 0008 7f000001 7f000001`, Codes.MALFORMED],
    [
      'a TLV longer than the header',
      `${SIG} 21 11 0010 7f000001 7f000001 0001 0002 05 0005 6162`,
      Codes.MALFORMED,
    ],
    [
      'a stray byte after the last TLV',
      `${SIG} 21 11 000e 7f000001 7f000001 0001 0002 0400`,
      Codes.MALFORMED,
    ],
    [
      'a CRC32C TLV of 3 bytes',
      `${SIG} 21 11 0012 7f000001 7f000001 0001 0002 03 0003 000000`,
      Codes.MALFORMED,
    ],
    ['a wrong CRC32C', `${SIG} 21 11 0013 7f000001 7f000001 0001 0002 03 0004 deadbeef`, Codes.CHECKSUM],
    ['a short SSL TLV', `${SIG} 21 11 0010 7f000001 7f000001 0001 0002 20 0001 01`, Codes.MALFORMED],
    ['a broken signature', `0d0a0d0a000d0a515549540b 21 11 000c`, Codes.INVALID],
    ['a header cut short', `${SIG} 21 11 000c 7f000001`, Codes.TRUNCATED],
  ];
  it.each(bad)('refuses %s', (_name, wire, code) => {
    expect(codeOf(() => decodeProxyHeader(hex(wire)))).toBe(code);
  });

  it('refuses a unique id over 128 bytes, both ways', () => {
    const id = Buffer.alloc(129, 0x61);
    const s = { address: '1.2.3.4', port: 1 };
    expect(codeOf(() => encodeProxyHeader({ version: 2, source: s, destination: s, uniqueId: id }))).toBe(
      Codes.ENCODE,
    );
    const wire = Buffer.concat([
      hex(`${SIG} 21 11`),
      Buffer.from([0, 12 + 3 + 129]),
      hex('01020304 01020304 0001 0001 05 0081'),
      id,
    ]);
    expect(codeOf(() => decodeProxyHeader(wire))).toBe(Codes.MALFORMED);
  });

  it('refuses to encode a header over 65535 bytes of body', () => {
    const s = { address: '1.2.3.4', port: 1 };
    const big = { type: 0xe0, value: Buffer.alloc(40000) };
    expect(codeOf(() => encodeProxyHeader({ version: 2, source: s, destination: s, tlvs: [big, big] }))).toBe(
      Codes.ENCODE,
    );
  });

  it('maps a v4 endpoint into INET6 when the other is v6 (as HAProxy does)', () => {
    const { header } = decodeProxyHeader(
      encodeProxyHeader({
        version: 2,
        source: { address: '203.0.113.9', port: 1 },
        destination: { address: '2001:db8::5', port: 2 },
      }),
    );
    expect(header).toMatchObject({
      family: 'inet6',
      source: { address: '::ffff:203.0.113.9' },
      destination: { address: '2001:db8::5' },
    });
  });
});
