import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, fromServer, harness, LADDR, SERVERS, snapshot, VIP } from './fixtures.js';
import { arpFrame, icmpEchoFrame, parseFrame, TCP, tcpFrame, udpFrame } from './frames.js';
import { capture } from './tshark.js';

const need = requires({ commands: ['tshark'], check: nativeUnavailableReason });

/** Everything the pipeline emits for a mix of flows: TCP both ways, UDP, ICMP, ARP. */
function emittedFrames(): Buffer[] {
  const h = harness();
  h.apply(add(snapshot(), snapshot({ name: 'dns', protocol: 'udp', port: 53 })));
  const out: Buffer[] = [];
  const send = (port: string, f: Buffer, now = 0) => {
    const frames = h.inject(port, f, now).map((e) => e.frame);
    out.push(...frames);
    return frames;
  };
  for (let i = 0; i < 6; i++) {
    const cport = 40000 + i * 111;
    const client = (flags: number, seq: number, ack: number, data?: Buffer) =>
      send(
        'wan',
        tcpFrame(fromClient, {
          src: CLIENT.ip,
          dst: VIP,
          sport: cport,
          dport: 80,
          flags,
          seq,
          ack,
          ...(data ? { data } : {}),
        }),
      );
    const [syn] = client(TCP.SYN, 1000 * i, 0);
    const s = parseFrame(syn!);
    const srv = SERVERS.findIndex((x) => x.ip === s.ip!.dst);
    const server = (flags: number, seq: number, ack: number, data?: Buffer) =>
      send(
        'lan',
        tcpFrame(fromServer(srv), {
          src: s.ip!.dst,
          dst: LADDR,
          sport: 8080,
          dport: s.tcp!.sport,
          flags,
          seq,
          ack,
          ...(data ? { data } : {}),
        }),
      );
    const body = Buffer.alloc(100 + i * 37, 0x41 + i);
    server(TCP.SYN | TCP.ACK, 9000, 1000 * i + 1);
    client(TCP.ACK, 1000 * i + 1, 9001);
    client(TCP.ACK | TCP.PSH, 1000 * i + 1, 9001, body);
    server(TCP.ACK | TCP.PSH, 9001, 1000 * i + 1 + body.length, body.subarray(1));
    client(TCP.FIN | TCP.ACK, 1000 * i + 1 + body.length, 9000 + body.length);
    server(i % 2 ? TCP.RST : TCP.FIN | TCP.ACK, 9000 + body.length, 1000 * i + 2 + body.length);
  }
  for (let i = 0; i < 4; i++) {
    const [q] = send(
      'wan',
      udpFrame(fromClient, {
        src: CLIENT.ip,
        dst: VIP,
        sport: 33000 + i,
        dport: 53,
        data: Buffer.alloc(i * 3 + 1, i),
      }),
    );
    const p = parseFrame(q!);
    const srv = SERVERS.findIndex((x) => x.ip === p.ip!.dst);
    send(
      'lan',
      udpFrame(fromServer(srv), {
        src: p.ip!.dst,
        dst: LADDR,
        sport: 8080,
        dport: p.udp!.sport,
        data: Buffer.alloc(i * 5 + 2, 7),
        noChecksum: i === 3,
      }),
    );
  }
  send('wan', icmpEchoFrame(fromClient, CLIENT.ip, VIP, 1, 1, Buffer.from('ping')));
  send('wan', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', VIP));
  return out;
}

describe.skipIf(need.skip)(
  `tshark, an oracle no one here wrote, checks every emitted frame${need.note}`,
  () => {
    it('finds every IP, TCP, UDP and ICMP checksum good and decodes the flows', () => {
      const frames = emittedFrames();
      expect(frames.length).toBeGreaterThan(50);
      const tshark = capture(frames, ['--disable-protocol', 'dns']);
      const rows = tshark.fields([
        'frame.number',
        'ip.checksum.status',
        'tcp.checksum.status',
        'udp.checksum.status',
        'icmp.checksum_bad',
        '_ws.expert.message',
        '_ws.malformed',
      ]);
      expect(rows).toHaveLength(frames.length);
      const bad = rows.filter(
        ([, ip, tcp, udp, icmp, expert, malformed]) =>
          ip === '0' ||
          tcp === '0' ||
          udp === '0' ||
          (icmp ?? '') !== '' ||
          /checksum/i.test(expert ?? '') ||
          (malformed ?? '') !== '',
      );
      expect(bad).toEqual([]);
      // Good, not merely unverified: tshark checked each one (1 = good). UDP checksum 0 is "not present".
      const ipRows = rows.filter(([, ip]) => ip !== '');
      expect(ipRows.every(([, ip]) => ip === '1')).toBe(true);
      expect(rows.filter(([, , tcp]) => tcp === '1').length).toBe(42); // 6 connections × 7 segments
      expect(rows.filter(([, , , udp]) => udp === '1').length).toBe(7);

      // The flows as tshark decodes them: the client only ever talks to the VIP, servers only to the local address.
      const convs = tshark.run('-q', '-z', 'conv,tcp');
      for (const line of convs.split('\n').filter((l) => l.includes('<->')))
        expect(line).toMatch(new RegExp(`${VIP}:80|${LADDR}:\\d+`));
      const anomalies = tshark.run('-q', '-z', 'expert,warn');
      expect(anomalies).not.toMatch(/[Cc]hecksum/);
    });
  },
);
