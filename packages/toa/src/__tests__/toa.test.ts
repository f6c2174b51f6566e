import { describe, expect, it } from 'vitest';
import {
  decodeToa,
  encodeToa,
  findToa,
  insertToa,
  insertToaIntoSegment,
  parseTcpOptions,
  readToaFromSegment,
  tcpChecksum,
  tcpOption as opt,
  TCP_MAX_OPTIONS_LENGTH,
  ToaErrorCodes as Codes,
} from '@fulcrum/toa';
import { tcpSegment } from './pcap.js';

const codeOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
};
const hex = (b: Buffer) => b.toString('hex');
const v4 = { address: '203.0.113.7', port: 51000 };
const v6 = { address: '2001:db8::7', port: 80 };

describe('TOA option bytes (DPVS layout)', () => {
  const vectors: [string, { address: string; port: number }, string][] = [
    ['IPv4: kind 254, length 8, port, address', v4, 'fe08c738cb007107'],
    ['IPv4 extremes', { address: '255.255.255.255', port: 65535 }, 'fe08ffffffffffff'],
    ['IPv4 port 0', { address: '0.0.0.0', port: 0 }, 'fe08000000000000'],
    ['IPv6: kind 254, length 20, port, address', v6, 'fe14005020010db8000000000000000000000007'],
    [
      'IPv4-mapped IPv6 stays a 20-byte option',
      { address: '::ffff:192.0.2.1', port: 1 },
      'fe14000100000000000000000000ffffc0000201',
    ],
  ];
  it.each(vectors)('%s', (_name, client, bytes) => {
    expect(hex(encodeToa(client))).toBe(bytes);
    expect(decodeToa(Buffer.from(bytes, 'hex'))).toEqual({
      ...client,
      family: client.address.includes(':') ? 6 : 4,
    });
  });

  it('round-trips random clients', () => {
    let s = 7;
    const r = (n: number) => ((s = (Math.imul(s, 48271) + 11) >>> 0) >>> 8) % n;
    for (let i = 0; i < 500; i++) {
      const port = r(65536);
      const address = r(2)
        ? [r(256), r(256), r(256), r(256)].join('.')
        : new URL(
            `http://[${Array.from({ length: 8 }, () => (r(3) ? r(65536) : 0).toString(16)).join(':')}]/`,
          ).hostname.slice(1, -1);
      const back = decodeToa(encodeToa({ address, port }));
      expect(back.port).toBe(port);
      expect(back.address).toBe(address.startsWith('::ffff:') ? back.address : address);
    }
  });

  it('refuses what is not a TOA option, and what cannot be encoded', () => {
    expect(codeOf(() => decodeToa(Buffer.from('020405b4', 'hex')))).toBe(Codes.INVALID);
    expect(codeOf(() => decodeToa(Buffer.from('fe0a00000000000000000000', 'hex')))).toBe(Codes.INVALID);
    expect(codeOf(() => decodeToa(Buffer.from('fe08c738cb00', 'hex')))).toBe(Codes.INVALID);
    expect(codeOf(() => encodeToa({ address: 'example.com', port: 1 }))).toBe(Codes.ENCODE);
    expect(codeOf(() => encodeToa({ address: 'fe80::1%eth0', port: 1 }))).toBe(Codes.ENCODE);
    expect(codeOf(() => encodeToa({ address: '1.2.3.4', port: 65536 }))).toBe(Codes.ENCODE);
  });
});

describe('TCP option space', () => {
  // Linux's SYN: MSS, SACK-permitted, timestamps, NOP, window scale = 20 bytes.
  const linuxSyn = Buffer.concat([
    opt.mss(1460),
    opt.sackPermitted(),
    opt.timestamps(1000, 0),
    opt.nop(),
    opt.windowScale(7),
  ]);
  // An established segment: NOP, NOP, timestamps = 12 bytes.
  const established = Buffer.concat([opt.nop(), opt.nop(), opt.timestamps(5, 6)]);

  it('an empty option area gets exactly the option', () => {
    expect(hex(insertToa(Buffer.alloc(0), v4))).toBe('fe08c738cb007107');
    expect(insertToa(Buffer.alloc(0), v6).length).toBe(20);
  });

  it('goes first, before existing options, which keep their bytes and order', () => {
    const out = insertToa(established, v4);
    expect(hex(out)).toBe('fe08c738cb007107' + hex(established));
    expect(parseTcpOptions(out).map((o) => o.kind)).toEqual([254, 1, 1, 8]);
  });

  it("fits Linux's 20-byte SYN options: 28 bytes with IPv4, exactly 40 with IPv6", () => {
    expect(insertToa(linuxSyn, v4).length).toBe(28);
    const full = insertToa(linuxSyn, v6);
    expect(full.length).toBe(TCP_MAX_OPTIONS_LENGTH);
    expect(parseTcpOptions(full).map((o) => o.kind)).toEqual([254, 2, 4, 8, 1, 3]);
    expect(findToa(full)).toEqual({ ...v6, family: 6 });
  });

  it('says clearly when it does not fit', () => {
    const sack3 = Buffer.concat([
      opt.nop(),
      opt.nop(),
      opt.sack([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    ]); // 28 bytes
    const area = Buffer.concat([established, sack3]); // 40 bytes: full
    expect(area.length).toBe(40);
    let err: { code?: string; message?: string; details?: Record<string, unknown> } = {};
    try {
      insertToa(area, v4);
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe(Codes.NO_ROOM);
    expect(err.message).toMatch(/no room for a 8-byte TOA option: the segment already carries 40 bytes/);
    expect(err.details).toEqual({ needed: 8, used: 40, limit: 40 });
  });

  it('prune drops padding and SACK blocks, never MSS, window scale, SACK-permitted or timestamps', () => {
    const sack3 = Buffer.concat([
      opt.nop(),
      opt.nop(),
      opt.sack([
        [1, 2],
        [3, 4],
        [5, 6],
      ]),
    ]);
    const out = insertToa(Buffer.concat([established, sack3]), v4, { onNoRoom: 'prune' });
    expect(parseTcpOptions(out).map((o) => o.kind)).toEqual([254, 8, 0]);
    expect(out.length).toBe(20);
    // The 36 bytes of a SYN with four 1-byte pads cannot lose anything essential: still no room for IPv6.
    const fat = Buffer.concat([
      opt.mss(1460),
      opt.nop(),
      opt.windowScale(7),
      opt.nop(),
      opt.nop(),
      opt.timestamps(1, 0),
      opt.sackPermitted(),
      Buffer.from([0xfd, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]),
    ]);
    expect(codeOf(() => insertToa(fat, v6, { onNoRoom: 'prune' }))).toBe(Codes.NO_ROOM);
  });

  it('a TOA the client forged is removed, so the server sees only ours', () => {
    const forged = Buffer.concat([encodeToa({ address: '6.6.6.6', port: 666 }), established]);
    const out = insertToa(forged, v4);
    expect(parseTcpOptions(out).filter((o) => o.kind === 254)).toHaveLength(1);
    expect(findToa(out)).toEqual({ ...v4, family: 4 });
    expect(out.length).toBe(20);
  });

  it('stops at EOL: what follows is padding, and is not carried over', () => {
    const area = Buffer.from([2, 4, 0x05, 0xb4, 0, 0xaa, 0xbb, 0xcc]);
    expect(parseTcpOptions(area).map((o) => o.kind)).toEqual([2, 0]);
    expect(hex(insertToa(area, v4))).toBe('fe08c738cb007107020405b4');
  });

  it('pads an option area to a multiple of 4 bytes with EOL', () => {
    const out = insertToa(Buffer.concat([opt.windowScale(7)]), v4);
    expect(hex(out)).toBe('fe08c738cb007107' + '03030700');
  });

  it('refuses an option list that does not parse (length 0/1, or past the end)', () => {
    expect(codeOf(() => parseTcpOptions(Buffer.from([2, 0, 0, 0])))).toBe(Codes.INVALID);
    expect(codeOf(() => parseTcpOptions(Buffer.from([8, 10, 0, 0])))).toBe(Codes.INVALID);
    expect(codeOf(() => parseTcpOptions(Buffer.from([3])))).toBe(Codes.INVALID);
    expect(codeOf(() => insertToa(Buffer.from([2, 1, 0, 0]), v4))).toBe(Codes.INVALID);
  });

  it('findToa reads as the TOA module does: the first 254 of length 8 or 20', () => {
    expect(findToa(established)).toBeUndefined();
    const odd = Buffer.from([254, 4, 0, 0, ...encodeToa(v4)]);
    expect(findToa(odd)).toEqual({ ...v4, family: 4 });
  });
});

describe('whole TCP segments', () => {
  const ip4 = { source: '10.0.0.100', destination: '10.0.0.1' };
  const segment = tcpSegment({
    sport: 40000,
    dport: 8080,
    seq: 1000,
    ack: 2000,
    flags: 0x18,
    options: Buffer.concat([opt.nop(), opt.nop(), opt.timestamps(5, 6)]),
    payload: Buffer.from('GET / HTTP/1.1\r\n'),
  });

  it('inserts into the options, raises the data offset, keeps the payload, and fixes the checksum', () => {
    const out = insertToaIntoSegment(segment, v4, { ip: ip4 });
    expect(out.length).toBe(segment.length + 8);
    expect(out[12]! >> 4).toBe(10);
    expect(out.subarray(0, 12).equals(segment.subarray(0, 12))).toBe(true);
    expect(out.subarray(40).toString()).toBe('GET / HTTP/1.1\r\n');
    expect(readToaFromSegment(out)).toEqual({ ...v4, family: 4 });
    // A correct checksum makes the one's-complement sum over pseudo-header and segment 0xffff.
    expect(tcpChecksum(out, ip4)).toBe(out.readUInt16BE(16));
  });

  it('IPv6 pseudo-header', () => {
    const ip6 = { source: 'fd00::100', destination: 'fd00::1' };
    const out = insertToaIntoSegment(segment, v6, { ip: ip6 });
    expect(out[12]! >> 4).toBe(13);
    expect(tcpChecksum(out, ip6)).toBe(out.readUInt16BE(16));
  });

  it('a segment whose header is already 60 bytes has no room', () => {
    const full = tcpSegment({
      sport: 1,
      dport: 2,
      seq: 0,
      ack: 0,
      flags: 0x10,
      options: Buffer.concat([
        opt.nop(),
        opt.nop(),
        opt.timestamps(1, 1),
        opt.nop(),
        opt.nop(),
        opt.sack([
          [1, 2],
          [3, 4],
          [5, 6],
        ]),
      ]),
    });
    expect(full[12]! >> 4).toBe(15);
    expect(codeOf(() => insertToaIntoSegment(full, v4))).toBe(Codes.NO_ROOM);
  });

  it('refuses a segment that is not one', () => {
    expect(codeOf(() => insertToaIntoSegment(Buffer.alloc(10), v4))).toBe(Codes.INVALID);
    const lying = Buffer.from(segment);
    lying[12] = 0xf0;
    expect(codeOf(() => readToaFromSegment(lying.subarray(0, 30)))).toBe(Codes.INVALID);
  });
});
