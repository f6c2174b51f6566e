import { decodeProxyHeader } from '@fulcrum/proxy-protocol';
import { requires } from '@fulcrum/testkit';
import { tcpOption } from '@fulcrum/toa';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, harness, LAN_MAC, snapshot, VIP, WAN_MAC } from './fixtures.js';
import { TCP } from './frames.js';
import { expectedHeader, Flow, ppSettings, synOptions } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

const C = 1000; // client ISN
const S = 5000; // server ISN
const lanPorts = (mtu: number) => ({
  ports: [
    { name: 'wan', mac: WAN_MAC, addresses: ['10.1.0.1/24'] },
    { name: 'lan', mac: LAN_MAC, addresses: ['10.2.0.1/24'], mtu },
  ],
});

describe.skipIf(need.skip)(`PROXY-protocol insertion, packet by packet${need.note}`, () => {
  it.each([
    ['v1', ppSettings(1)],
    ['v2', ppSettings(2)],
    [
      'v2 with TLVs',
      ppSettings(2, {
        crc32c: true,
        uniqueId: true,
        authority: 'example.org',
        alpn: 'h2',
        netns: 'blue',
        custom: [{ type: 0xe1, value: 'c0ffee', encoding: 'hex' }],
      }),
    ],
  ])(
    '%s: the header starts the server-bound stream; every seq/ack after it is shifted both ways',
    (_, pt) => {
      const h = harness();
      h.apply(add(snapshot({ passthrough: pt })));
      const f = new Flow(h, 42000);
      const [syn] = f.client({ flags: TCP.SYN, seq: C, options: synOptions() }, 100);
      expect(syn!.tcp).toMatchObject({ seq: C, checksumOk: true });
      expect(syn!.payload.length).toBe(0);
      const [synAck] = f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, 101);
      expect(synAck!.tcp).toMatchObject({ seq: S, ack: C + 1 });

      // The handshake-completing ACK carries the header (server-speaks-first protocols work).
      const header = expectedHeader(pt, f);
      const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }, 102);
      expect(ack!.payload).toEqual(header);
      expect(ack!.tcp).toMatchObject({ seq: C + 1, ack: S + 1, flags: TCP.ACK, checksumOk: true });
      expect(ack!.ip!.checksumOk).toBe(true);
      // @fulcrum/proxy-protocol's parser (CRC32C verified when present) reads the client back.
      const { header: decoded, rest } = decodeProxyHeader(ack!.payload);
      expect(rest.length).toBe(0);
      expect(decoded).toMatchObject({
        source: { address: CLIENT.ip, port: 42000 },
        destination: { address: VIP, port: 80 },
      });
      const hl = header.length;

      // The first data follows it, moved up by its length.
      const req = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
      const [data] = f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: req }, 103);
      expect(data!.payload).toEqual(req);
      expect(data!.tcp).toMatchObject({ seq: C + 1 + hl, ack: S + 1, checksumOk: true });

      // Server to client: acks and SACK edges come back down by the header's length.
      const sack = tcpOption.sack([[C + 1 + hl + req.length + 100, C + 1 + hl + req.length + 200]]);
      const [resp] = f.fromServer(
        {
          flags: TCP.ACK | TCP.PSH,
          seq: S + 1,
          ack: C + 1 + hl + req.length,
          data: Buffer.from('HTTP/1.1 200 OK\r\n'),
          options: Buffer.concat([tcpOption.nop(), tcpOption.nop(), sack]),
        },
        104,
      );
      expect(resp!.tcp).toMatchObject({ seq: S + 1, ack: C + 1 + req.length, checksumOk: true });
      expect(resp!.tcp!.options.readUInt32BE(4)).toBe(C + 1 + req.length + 100);
      expect(resp!.tcp!.options.readUInt32BE(8)).toBe(C + 1 + req.length + 200);

      // Second client segment, with a SACK block of server data: the server's sequence space
      // is not shifted, so its edges pass unchanged while the segment's seq moves up.
      const clientSack = tcpOption.sack([[S + 100, S + 200]]);
      const [more] = f.client(
        {
          flags: TCP.ACK,
          seq: C + 1 + req.length,
          ack: S + 18,
          data: Buffer.from('x'),
          options: Buffer.concat([tcpOption.nop(), tcpOption.nop(), clientSack]),
        },
        105,
      );
      expect(more!.tcp!.options.subarray(2)).toEqual(clientSack);
      expect(more!.tcp!.checksumOk).toBe(true);
      expect(more!.tcp).toMatchObject({ seq: C + 1 + req.length + hl, ack: S + 18 });
      const [again] = f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 18, data: req }, 106);
      expect(again!.payload).toEqual(req);
      expect(again!.tcp!.seq).toBe(C + 1 + hl);

      // FIN both ways.
      const end = C + 2 + req.length;
      const [fin] = f.client({ flags: TCP.FIN | TCP.ACK, seq: end, ack: S + 18 }, 107);
      expect(fin!.tcp).toMatchObject({ seq: end + hl, flags: TCP.FIN | TCP.ACK, checksumOk: true });
      const [finAck] = f.fromServer({ flags: TCP.FIN | TCP.ACK, seq: S + 18, ack: end + hl + 1 }, 108);
      expect(finAck!.tcp).toMatchObject({ ack: end + 1, checksumOk: true });
      expect(h.counters()).toMatchObject({
        proxy_protocol_inserted: 1,
        proxy_protocol_resent: 0,
        proxy_protocol_standalone: 0,
      });
    },
  );

  it('sends the header again when the handshake ACK carrying it was lost (the server retransmits its SYN-ACK)', () => {
    const pt = ppSettings(2);
    const h = harness();
    h.apply(add(snapshot({ passthrough: pt })));
    const f = new Flow(h, 42001);
    f.client({ flags: TCP.SYN, seq: C });
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 });
    const header = expectedHeader(pt, f);
    f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }); // lost on the way
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 });
    const [reAck] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 });
    expect(reAck!.payload).toEqual(header);
    expect(reAck!.tcp!.seq).toBe(C + 1);
    expect(h.counters()).toMatchObject({ proxy_protocol_inserted: 1, proxy_protocol_resent: 1 });
  });

  it('a retransmitted first segment carries the header again while the server has not acknowledged it', () => {
    const pt = ppSettings(1);
    const h = harness();
    h.apply(add(snapshot({ passthrough: pt })));
    const f = new Flow(h, 42002);
    f.client({ flags: TCP.SYN, seq: C });
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 });
    const header = expectedHeader(pt, f);
    const hl = header.length;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }); // lost
    const req = Buffer.from('hello');
    const [first] = f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: req });
    expect(first!.tcp!.seq).toBe(C + 1 + hl);
    // The server has a hole where the header goes: it acknowledges nothing, or part of the
    // header at most; the client must see nothing of its own acknowledged.
    const [dup] = f.fromServer({ flags: TCP.ACK, seq: S + 1, ack: C + 1 });
    expect(dup!.tcp).toMatchObject({ ack: C + 1, checksumOk: true });
    const [partial] = f.fromServer({ flags: TCP.ACK, seq: S + 1, ack: C + 1 + 5 });
    expect(partial!.tcp).toMatchObject({ ack: C + 1, checksumOk: true });
    const [rtx] = f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: req });
    expect(rtx!.payload).toEqual(Buffer.concat([header, req]));
    expect(rtx!.tcp).toMatchObject({ seq: C + 1, checksumOk: true });
    const [acked] = f.fromServer({ flags: TCP.ACK, seq: S + 1, ack: C + 1 + hl + req.length });
    expect(acked!.tcp!.ack).toBe(C + 1 + req.length);
    expect(h.counters()).toMatchObject({ proxy_protocol_inserted: 1, proxy_protocol_resent: 1 });
  });

  it('when the header does not fit a full-sized first segment, sends it in a segment of its own, first', () => {
    const pt = ppSettings(1);
    const h = harness(lanPorts(600));
    h.apply(add(snapshot({ passthrough: pt })));
    const f = new Flow(h, 42003);
    f.client({ flags: TCP.SYN, seq: C });
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 });
    const header = expectedHeader(pt, f);
    const hl = header.length;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }); // lost
    const big = Buffer.alloc(560, 0x62);
    f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, data: big });
    const out = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, data: big }); // its retransmission
    expect(out).toHaveLength(2);
    const [alone, rest] = out;
    expect(alone!.port).toBe('lan');
    expect(alone!.payload).toEqual(header);
    expect(alone!.tcp).toMatchObject({ seq: C + 1, flags: TCP.ACK | TCP.PSH, checksumOk: true });
    expect(alone!.ip!.checksumOk).toBe(true);
    expect(rest!.payload).toEqual(big);
    expect(rest!.tcp).toMatchObject({ seq: C + 1 + hl, checksumOk: true });
    expect(rest!.raw.length).toBe(14 + 600);
    expect(h.counters()).toMatchObject({ proxy_protocol_resent: 1, proxy_protocol_standalone: 1 });
  });

  it('never puts the header on a SYN or a RST', () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: ppSettings(2) })));
    const f = new Flow(h, 42004);
    const [syn] = f.client({ flags: TCP.SYN, seq: C });
    expect(syn!.payload.length).toBe(0);
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 });
    const [rst] = f.client({ flags: TCP.RST | TCP.ACK, seq: C + 1, ack: S + 1 });
    expect(rst!.payload.length).toBe(0);
    expect(rst!.tcp).toMatchObject({ seq: C + 1, checksumOk: true });
    expect(h.counters().proxy_protocol_inserted).toBe(0);
  });

  it('refuses a PROXY-protocol UDP service and an unknown passthrough with a coded error', () => {
    const h = harness();
    expect(() => h.apply(add(snapshot({ protocol: 'udp', port: 53, passthrough: ppSettings(2) })))).toThrow(
      expect.objectContaining({ code: 'FULCRUM_DATAPLANE_UNSUPPORTED' }),
    );
    expect(() =>
      h.apply(add(snapshot({ passthrough: { name: 'x', requires: ['persistence'], settings: {} } }))),
    ).toThrow(expect.objectContaining({ code: 'FULCRUM_DATAPLANE_UNSUPPORTED' }));
    expect(h.services()).toEqual([]);
  });
});
