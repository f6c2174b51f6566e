import { findToa } from '@fulcrum/toa';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import type { PassthroughSettings } from '@fulcrum/kernel';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, clientSeg, harness, LADDR, serverSeg, SERVERS, snapshot, VIP } from './fixtures.js';
import { parseFrame, TCP, type TcpFields } from './frames.js';
import { ppSettings, toaSettings } from './insert-flow.js';

// DPVS's defer_rs_syn: behind SYNPROXY, the server is opened by the client's first data,
// not by the handshake-completing ACK, so clients that only complete handshakes (a cookie
// is cheap to echo) never reach a server and leave no state.

const need = requires({ check: nativeUnavailableReason });

const CISN = 1000;
const SISN = 7000;

function setup(passthrough?: PassthroughSettings, defer = true) {
  const h = harness({ synproxy: { deferRsSyn: defer } });
  h.apply(
    add(
      snapshot({
        synproxy: true,
        ...(passthrough ? { passthrough } : {}),
        servers: [{ address: SERVERS[0]!.ip, port: 8080 }],
      }),
    ),
  );
  const client = (f: Partial<TcpFields>, now: number) =>
    h.inject('wan', clientSeg(40000, { flags: TCP.ACK, ...f }), now);
  const server = (lport: number, f: Partial<TcpFields>, now: number) =>
    h.inject('lan', serverSeg(0, lport, { flags: TCP.ACK, ...f }), now);
  return { h, client, server };
}

describe.skipIf(need.skip)(`SYNPROXY deferRsSyn, packet by packet${need.note}`, () => {
  it('offers the client its own window, drops pure ACKs without state, and opens the server on the first data', () => {
    const { h, client, server } = setup();
    const [sa] = client({ flags: TCP.SYN, seq: CISN, window: 29200 }, 0);
    const synAck = parseFrame(sa!.frame).tcp!;
    // Not the zero window of the default: the client must be allowed to send its request.
    expect(synAck).toMatchObject({
      flags: TCP.SYN | TCP.ACK,
      ack: CISN + 1,
      window: 29200,
      checksumOk: true,
    });
    const cookie = synAck.seq;

    // The handshake-completing ACK, and its retransmission: nothing leaves, nothing is kept.
    expect(client({ seq: CISN + 1, ack: cookie + 1 }, 10)).toEqual([]);
    expect(client({ seq: CISN + 1, ack: cookie + 1 }, 20)).toEqual([]);
    expect(h.connections()).toEqual([]);
    expect(h.counters().synproxy_ack_deferred).toBe(2);
    expect(h.counters().synproxy_ack_valid).toBe(0);

    // The request: its ACK still carries the cookie, so it opens the server now.
    const [syn] = client({ seq: CISN + 1, ack: cookie + 1, data: Buffer.from('GET / HTTP/1.0\r\n\r\n') }, 30);
    const s = parseFrame(syn!.frame);
    expect(s.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip, checksumOk: true });
    expect(s.tcp).toMatchObject({ seq: CISN, ack: 0, flags: TCP.SYN, checksumOk: true });
    expect(s.payload.length).toBe(0);
    expect(h.connections()).toHaveLength(1);
    expect(h.counters().synproxy_ack_valid).toBe(1);
    const lport = s.tcp!.sport;

    // The server's SYN-ACK: the kept request completes its handshake, the client gets the window.
    const out = server(lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 40);
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    const req = parseFrame(out[0]!.frame);
    expect(req.tcp).toMatchObject({ seq: CISN + 1, ack: SISN + 1, flags: TCP.ACK, checksumOk: true });
    expect(req.payload.toString()).toBe('GET / HTTP/1.0\r\n\r\n');
    expect(parseFrame(out[1]!.frame).tcp).toMatchObject({ seq: cookie + 1, ack: CISN + 1, flags: TCP.ACK });

    // The answer reaches the client in the cookie's sequence space.
    const [reply] = server(lport, { seq: SISN + 1, ack: CISN + 19, data: Buffer.from('HTTP/1.0 200') }, 50);
    const r = parseFrame(reply!.frame);
    expect(r.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
    expect(r.tcp).toMatchObject({ seq: cookie + 1, ack: CISN + 19, checksumOk: true });
  });

  it('a data segment with a forged cookie opens nothing', () => {
    const { h, client } = setup();
    const [sa] = client({ flags: TCP.SYN, seq: CISN }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    expect(client({ seq: CISN + 1, ack: cookie + 2, data: Buffer.from('x') }, 10)).toEqual([]);
    expect(h.connections()).toEqual([]);
    expect(h.counters().synproxy_bad_cookie).toBe(1);
  });

  it('off (the default): the zero window, and the pure ACK opens the server', () => {
    const { h, client } = setup(undefined, false);
    const [sa] = client({ flags: TCP.SYN, seq: CISN, window: 29200 }, 0);
    const synAck = parseFrame(sa!.frame).tcp!;
    expect(synAck.window).toBe(0);
    const [syn] = client({ seq: CISN + 1, ack: synAck.seq + 1 }, 10);
    expect(parseFrame(syn!.frame).tcp!.flags).toBe(TCP.SYN);
    expect(h.counters().synproxy_ack_deferred).toBe(0);
  });

  it('with TOA: the option rides the kept request, which completes the server handshake', () => {
    const { h, client, server } = setup(toaSettings());
    const [sa] = client({ flags: TCP.SYN, seq: CISN }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ seq: CISN + 1, ack: cookie + 1, data: Buffer.from('GET /') }, 10);
    const s = parseFrame(syn!.frame);
    expect(findToa(s.tcp!.options)).toBeUndefined();
    const out = server(s.tcp!.sport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 20);
    const req = parseFrame(out[0]!.frame);
    expect(req.tcp).toMatchObject({ seq: CISN + 1, ack: SISN + 1, checksumOk: true });
    expect(req.payload.toString()).toBe('GET /');
    expect(findToa(req.tcp!.options)).toEqual({ address: CLIENT.ip, port: 40000, family: 4 });
    expect(h.counters().toa_inserted).toBe(1);
  });

  it('with the PROXY protocol: the header goes before the kept request, and sequence numbers shift both ways', () => {
    const { client, server } = setup(ppSettings(1));
    const [sa] = client({ flags: TCP.SYN, seq: CISN }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ seq: CISN + 1, ack: cookie + 1, data: Buffer.from('GET /') }, 10);
    const lport = parseFrame(syn!.frame).tcp!.sport;
    const out = server(lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 20);
    const header = `PROXY TCP4 ${CLIENT.ip} ${VIP} 40000 80\r\n`;
    // Whether the header shares the request's segment or goes in its own, the server's
    // byte stream is the header, then the request, from its first sequence number on.
    const toServer = out.filter((o) => o.port === 'lan').map((o) => parseFrame(o.frame));
    expect(toServer.every((f) => f.tcp!.checksumOk)).toBe(true);
    expect(toServer[0]!.tcp!.seq).toBe(CISN + 1);
    const stream = Buffer.concat(
      [...toServer].sort((a, b) => a.tcp!.seq - b.tcp!.seq).map((f) => f.payload),
    ).toString();
    expect(stream).toBe(header + 'GET /');
    const n = header.length;
    // The server acknowledges everything: the client hears only of its own 5 bytes.
    const [reply] = server(lport, { seq: SISN + 1, ack: CISN + 1 + n + 5, data: Buffer.from('HTTP') }, 30);
    const r = parseFrame(reply!.frame);
    expect(r.tcp).toMatchObject({ seq: cookie + 1, ack: CISN + 6, checksumOk: true });
    // The client's next bytes land after the header in the server's space.
    const [more] = client({ seq: CISN + 6, ack: cookie + 5, data: Buffer.from('!') }, 40);
    expect(parseFrame(more!.frame).tcp).toMatchObject({
      seq: CISN + 1 + n + 5,
      ack: SISN + 5,
      checksumOk: true,
    });
  });
});
