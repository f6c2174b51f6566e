// tshark (Debian's Wireshark) as the oracle: a pcap written here, with Fulcrum's option in
// an Ethernet/IPv4 and an Ethernet/IPv6 TCP segment, must decode as a well-formed kind-254
// option of the right length, with our port and address bytes, and good checksums.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '@fulcrum/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertToaIntoSegment, tcpOption as opt } from '@fulcrum/toa';
import { ethernetFrame, pcapFile, tcpSegment } from './pcap.js';

const need = requires({ commands: ['tshark'] });

describe.skipIf(need.skip)(`tshark decodes Fulcrum's TOA option${need.note}`, () => {
  let dir: string;
  let rows: Record<string, string>[];
  let verbose: string;
  const fields = [
    'frame.number',
    'tcp.hdr_len',
    'tcp.option_kind',
    'tcp.option_len',
    'tcp.options',
    'tcp.options.experimental.exid',
    'tcp.options.experimental.data',
    'tcp.checksum.status',
    'ip.checksum.status',
    'tcp.payload',
    '_ws.expert',
    '_ws.malformed',
  ];

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-toa-'));
    const payload = Buffer.from('GET / HTTP/1.1\r\n');
    const established = Buffer.concat([opt.nop(), opt.nop(), opt.timestamps(4000, 3000)]);
    const frames = [
      // The ACK/data segment toward the real server, as a FULLNAT dataplane sends it.
      ethernetFrame(
        '10.0.0.100',
        '10.0.0.1',
        insertToaIntoSegment(
          tcpSegment({
            sport: 40000,
            dport: 8080,
            seq: 1001,
            ack: 5001,
            flags: 0x18,
            options: established,
            payload,
          }),
          { address: '203.0.113.7', port: 51000 },
          { ip: { source: '10.0.0.100', destination: '10.0.0.1' } },
        ),
      ),
      ethernetFrame(
        'fd00::100',
        'fd00::1',
        insertToaIntoSegment(
          tcpSegment({ sport: 40001, dport: 8080, seq: 1, ack: 1, flags: 0x10, options: established }),
          { address: '2001:db8::7', port: 443 },
          { ip: { source: 'fd00::100', destination: 'fd00::1' } },
        ),
      ),
      // Linux's SYN options plus an IPv6 TOA: exactly the 40-byte limit.
      ethernetFrame(
        '10.0.0.100',
        '10.0.0.1',
        insertToaIntoSegment(
          tcpSegment({
            sport: 40002,
            dport: 8080,
            seq: 7,
            ack: 0,
            flags: 0x02,
            options: Buffer.concat([
              opt.mss(1460),
              opt.sackPermitted(),
              opt.timestamps(1, 0),
              opt.nop(),
              opt.windowScale(7),
            ]),
          }),
          { address: '2001:db8::8', port: 8 },
          { ip: { source: '10.0.0.100', destination: '10.0.0.1' } },
        ),
      ),
    ];
    const file = join(dir, 'toa.pcap');
    writeFileSync(file, pcapFile(frames));
    const prefs = ['-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE'];
    const out = execFileSync(
      'tshark',
      [
        '-r',
        file,
        ...prefs,
        '-T',
        'fields',
        '-E',
        'separator=|',
        '-E',
        'occurrence=a',
        '-E',
        'aggregator=,',
        ...fields.flatMap((f) => ['-e', f]),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    rows = out
      .trim()
      .split('\n')
      .map((line) => Object.fromEntries(line.split('|').map((v, i) => [fields[i]!, v])));
    verbose = execFileSync('tshark', ['-r', file, ...prefs, '-V'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('reads three frames, none malformed, with no expert warning or error', () => {
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r['_ws.malformed']).toBe('');
      expect(r['_ws.expert']).not.toMatch(/Warning|Error/);
    }
    expect(verbose).not.toMatch(/Malformed|Bogus|invalid/i);
  });

  it('IPv4 client: a kind-254 option of length 8 with port 51000 and 203.0.113.7, checksums good', () => {
    const r = rows[0]!;
    expect(r['tcp.option_kind']).toBe('254,1,1,8');
    expect(r['tcp.option_len']).toBe('8,10');
    expect(r['tcp.options']).toBe('fe08c738cb007107' + '0101080a00000fa000000bb8');
    // Wireshark reads 254 as an RFC 6994 experiment: the first two value bytes (our port) as its ExID.
    expect(r['tcp.options.experimental.exid']).toBe('0xc738');
    expect(r['tcp.options.experimental.data']).toBe('cb007107');
    expect(r['tcp.hdr_len']).toBe('40');
    expect(r['tcp.checksum.status']).toBe('1');
    expect(r['ip.checksum.status']).toBe('1');
    expect(Buffer.from(r['tcp.payload']!, 'hex').toString()).toBe('GET / HTTP/1.1\r\n');
  });

  it('IPv6 client over IPv6: a kind-254 option of length 20 with port 443 and 2001:db8::7', () => {
    const r = rows[1]!;
    expect(r['tcp.option_kind']).toBe('254,1,1,8');
    expect(r['tcp.option_len']).toBe('20,10');
    expect(r['tcp.options']!.slice(0, 40)).toBe('fe1401bb20010db8000000000000000000000007');
    expect(r['tcp.options.experimental.data']).toBe('20010db8000000000000000000000007');
    expect(r['tcp.hdr_len']).toBe('52');
    expect(r['tcp.checksum.status']).toBe('1');
  });

  it('a full 60-byte header (SYN options + IPv6 TOA) decodes option by option', () => {
    const r = rows[2]!;
    expect(r['tcp.hdr_len']).toBe('60');
    expect(r['tcp.option_kind']).toBe('254,2,4,8,1,3');
    expect(r['tcp.checksum.status']).toBe('1');
    expect(verbose).toContain('Kind: RFC3692-style Experiment 2 (254)');
  });
});
