import { findToa } from '@fulcrum/toa';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, harness, SERVERS, serverSeg, snapshot, VIP } from './fixtures.js';
import { opt, parseFrame, TCP, tcpFrame } from './frames.js';
import { ppSettings, toaSettings } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`SYNPROXY with TOA on one connection, packet by packet${need.note}`, () => {
  it('puts TOA on the handshake-completing ACK SYNPROXY sends the server', () => {
    const h = harness();
    h.apply(
      add(
        snapshot({
          synproxy: true,
          passthrough: toaSettings(),
          servers: [{ address: SERVERS[0]!.ip, port: 8080 }],
        }),
      ),
    );
    const client = (f: Parameters<typeof tcpFrame>[1], now: number) =>
      h.inject('wan', tcpFrame(fromClient, f), now);
    const c = { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80 };
    const [sa] = client({ ...c, flags: TCP.SYN, seq: 1000 }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ ...c, flags: TCP.ACK, seq: 1001, ack: cookie + 1 }, 10);
    const s = parseFrame(syn!.frame);
    expect(findToa(s.tcp!.options)).toBeUndefined(); // TOA goes on the ACK, not the SYN
    const out = h.inject(
      'lan',
      serverSeg(0, s.tcp!.sport, { flags: TCP.SYN | TCP.ACK, seq: 7000, ack: 1001 }),
      20,
    );
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    const ack = parseFrame(out[0]!.frame);
    expect(ack.tcp).toMatchObject({ seq: 1001, ack: 7001, flags: TCP.ACK, checksumOk: true });
    expect(ack.ip!.checksumOk).toBe(true);
    expect(findToa(ack.tcp!.options)).toEqual({ address: CLIENT.ip, port: 40000, family: 4 });
    expect(h.counters().toa_inserted).toBe(1);
  });

  it('with the PROXY protocol: the header rides the completing ACK and both deltas shift seq, ack and SACK edges both ways', () => {
    const h = harness();
    h.apply(
      add(
        snapshot({
          synproxy: true,
          passthrough: ppSettings(1),
          servers: [{ address: SERVERS[0]!.ip, port: 8080 }],
        }),
      ),
    );
    const c = { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80 };
    const client = (f: Partial<Parameters<typeof tcpFrame>[1]>, now: number) =>
      h.inject('wan', tcpFrame(fromClient, { ...c, flags: TCP.ACK, ...f }), now);
    const [sa] = client({ flags: TCP.SYN, seq: 1000 }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ seq: 1001, ack: cookie + 1 }, 10);
    const lport = parseFrame(syn!.frame).tcp!.sport;
    const server = (f: Partial<Parameters<typeof tcpFrame>[1]>, now: number) =>
      h.inject('lan', serverSeg(0, lport, { flags: TCP.ACK, ...f }), now);
    const out = server({ flags: TCP.SYN | TCP.ACK, seq: 7000, ack: 1001 }, 20);
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    const ack = parseFrame(out[0]!.frame);
    const header = `PROXY TCP4 ${CLIENT.ip} ${VIP} 40000 80\r\n`;
    expect(ack.tcp).toMatchObject({ seq: 1001, ack: 7001, checksumOk: true });
    expect(ack.payload.toString()).toBe(header);
    const n = header.length;
    const [data] = client({ seq: 1001, ack: cookie + 1, data: Buffer.from('GET /') }, 30);
    const d = parseFrame(data!.frame);
    expect(d.tcp).toMatchObject({ seq: 1001 + n, ack: 7001, checksumOk: true });
    expect(d.payload.toString()).toBe('GET /');
    const [reply] = server({ seq: 7001, ack: 1001 + n + 5, data: Buffer.from('HTTP') }, 40);
    const r = parseFrame(reply!.frame);
    expect(r.tcp).toMatchObject({ seq: cookie + 1, ack: 1006, checksumOk: true });
    expect(r.payload.toString()).toBe('HTTP');

    // SACK blocks: the client's name the server's bytes in the cookie's space (s2c_delta
    // comes off), the server's name the client's bytes past the header (c2s_delta comes off).
    const [cs] = client(
      { seq: 1006, ack: cookie + 5, options: Buffer.concat([opt.sack([cookie + 105, cookie + 205])]) },
      50,
    );
    const csp = parseFrame(cs!.frame);
    expect(csp.tcp).toMatchObject({ seq: 1006 + n, ack: 7005, checksumOk: true });
    expect(csp.tcp!.opts.sack).toEqual([[7105, 7205]]);
    const [ss] = server(
      { seq: 7005, ack: 1006 + n, options: opt.sack([1016 + n, 1026 + n], [1036 + n, 1046 + n]) },
      60,
    );
    const ssp = parseFrame(ss!.frame);
    expect(ssp.tcp).toMatchObject({ seq: cookie + 5, ack: 1006, checksumOk: true });
    expect(ssp.tcp!.opts.sack).toEqual([
      [1016, 1026],
      [1036, 1046],
    ]);
  });
});
