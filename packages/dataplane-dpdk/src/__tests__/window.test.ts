// The TCP window check (options.tcp.windowCheck, core/track.h), packet by packet: what each
// end told the other bounds what the balancer forwards; a segment outside it is dropped,
// counted, and moves nothing (state, timers, the tracked stream).
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import type { HarnessOptions } from '../harness.js';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, harness, serverSeg, snapshot, VIP } from './fixtures.js';
import { opt, parseFrame, TCP, tcpFrame } from './frames.js';
import { expectedHeader, Flow, ppSettings, type Seg } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

const C = 1000; // client ISN
const S = 5000; // server ISN
const bytes = (n: number) => Buffer.alloc(n, 0x61);

/** A plain FULLNAT connection after its handshake: the client offered a 1000-byte window, the server 2000. */
function established(extra: Partial<HarnessOptions> = {}, scale?: { client?: number; server?: number }) {
  const h = harness(extra);
  h.apply(add(snapshot()));
  const f = new Flow(h, 43000);
  const cs = scale?.client !== undefined ? opt.wscale(scale.client) : undefined;
  const ss = scale?.server !== undefined ? opt.wscale(scale.server) : undefined;
  expect(f.client({ flags: TCP.SYN, seq: C, window: 1000, ...(cs ? { options: cs } : {}) }, 0)).toHaveLength(
    1,
  );
  expect(
    f.fromServer(
      { flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1, window: 2000, ...(ss ? { options: ss } : {}) },
      1,
    ),
  ).toHaveLength(1);
  expect(f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1, window: 1000 }, 2)).toHaveLength(1);
  // Each side keeps offering its handshake window unless a segment says otherwise.
  const sent = (seg: Seg, from: 'client' | 'server', now = 10) =>
    (from === 'client'
      ? f.client({ window: 1000, ...seg }, now)
      : f.fromServer({ window: 2000, ...seg }, now)
    ).length;
  const drops = () => h.counters().drop_out_of_window ?? 0;
  const state = () => h.connections()[0]?.state;
  return { h, f, sent, drops, state };
}

describe.skipIf(need.skip)(`TCP window check, packet by packet${need.note}`, () => {
  it('forwards what lies in the window and drops, counts and ignores what does not, each bound alone', () => {
    const { sent, drops, state } = established();
    // In window: data up to what the server's SYN-ACK allowed (C+1 .. C+1+2000).
    expect(sent({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: bytes(100) }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: S + 1, ack: C + 101, window: 2000 }, 'server')).toBe(1);
    // A segment that starts where the window ends (a window probe's place) passes; the
    // bounds are conntrack's, which give that one byte of slack.
    expect(sent({ flags: TCP.ACK, seq: C + 101 + 2000, ack: S + 1, data: bytes(1) }, 'client')).toBe(1);
    expect(drops()).toBe(0);

    // 1. A sequence number beyond the receiver's window.
    expect(sent({ flags: TCP.ACK, seq: C + 101 + 2002, ack: S + 1, data: bytes(10) }, 'client')).toBe(0);
    expect(sent({ flags: TCP.ACK, seq: S + 1 + 1001 + 1, ack: C + 101, data: bytes(10) }, 'server')).toBe(0);
    expect(drops()).toBe(2);
    // 2. Data older than one receive window before the furthest byte sent.
    expect(
      sent({ flags: TCP.ACK, seq: C + 101 + 2001 - 2000 - 50, ack: S + 1, data: bytes(10) }, 'client'),
    ).toBe(0);
    expect(drops()).toBe(3);
    // ...while a retransmission within one window passes.
    expect(sent({ flags: TCP.ACK, seq: C + 1, ack: S + 1, data: bytes(100) }, 'client')).toBe(1);
    // 3. An ACK of data the other side never sent.
    expect(sent({ flags: TCP.ACK, seq: C + 101 + 2001, ack: S + 2 }, 'client')).toBe(0);
    expect(sent({ flags: TCP.ACK, seq: S + 1, ack: C + 101 + 2001 + 1 }, 'server')).toBe(0);
    expect(drops()).toBe(5);
    // 4. An ACK older than one of the sender's windows (the client never offered more than 1000).
    expect(sent({ flags: TCP.ACK, seq: C + 101 + 2001, ack: S + 1 - 1001 }, 'client')).toBe(0);
    expect(sent({ flags: TCP.ACK, seq: C + 101 + 2001, ack: S + 1 - 1000 }, 'client')).toBe(1);
    expect(drops()).toBe(6);

    // A RST or FIN outside the window changes no state; inside it, it does.
    expect(sent({ flags: TCP.RST, seq: C + 101 + 100_000 }, 'client')).toBe(0);
    expect(sent({ flags: TCP.FIN | TCP.ACK, seq: S + 1 + 50_000, ack: C + 101 }, 'server')).toBe(0);
    expect(drops()).toBe(8);
    expect(state()).toBe('ESTABLISHED');
    expect(sent({ flags: TCP.RST, seq: C + 101 + 2000 }, 'client')).toBe(1);
    expect(state()).toBe('CLOSE');
  });

  it('scales windows after the handshake when both ends offered window scaling, and only then', () => {
    // Both: the server's 512 << 7 = 65536 bytes.
    const both = established({}, { client: 2, server: 7 });
    expect(both.sent({ flags: TCP.ACK, seq: S + 1, ack: C + 1, window: 512 }, 'server')).toBe(1);
    expect(both.sent({ flags: TCP.ACK, seq: C + 1 + 60_000, ack: S + 1, data: bytes(10) }, 'client')).toBe(1);
    expect(both.sent({ flags: TCP.ACK, seq: C + 1 + 66_000, ack: S + 1, data: bytes(10) }, 'client')).toBe(0);
    // The client's 1000 << 2: server data 3,900 bytes ahead passes, 4,100 does not.
    expect(both.sent({ flags: TCP.ACK, seq: C + 1, ack: S + 1, window: 1000 }, 'client')).toBe(1);
    expect(
      both.sent({ flags: TCP.ACK, seq: S + 1 + 3900, ack: C + 1 + 60_010, data: bytes(10) }, 'server'),
    ).toBe(1);
    expect(
      both.sent({ flags: TCP.ACK, seq: S + 1 + 4100, ack: C + 1 + 60_010, data: bytes(10) }, 'server'),
    ).toBe(0);
    expect(both.drops()).toBe(2);

    // The client alone: the server's windows are bytes (its SYN-ACK's 2000 stays the edge).
    const one = established({}, { client: 2 });
    expect(one.sent({ flags: TCP.ACK, seq: S + 1, ack: C + 1, window: 512 }, 'server')).toBe(1);
    expect(one.sent({ flags: TCP.ACK, seq: C + 1 + 1990, ack: S + 1, data: bytes(10) }, 'client')).toBe(1);
    expect(one.sent({ flags: TCP.ACK, seq: C + 1 + 60_000, ack: S + 1, data: bytes(10) }, 'client')).toBe(0);
    expect(one.drops()).toBe(1);
  });

  it('lets a zero-window probe through, and nothing further', () => {
    const { sent, drops } = established();
    expect(sent({ flags: TCP.ACK, seq: C + 1, ack: S + 1, data: bytes(2000) }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: S + 1, ack: C + 2001, window: 0 }, 'server')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: C + 2001, ack: S + 1, data: bytes(1) }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: C + 2003, ack: S + 1, data: bytes(1) }, 'client')).toBe(0);
    expect(drops()).toBe(1);
  });

  it('can be turned off: windowCheck false forwards the same segments uncounted', () => {
    const { sent, drops } = established({ tcp: { windowCheck: false } });
    expect(sent({ flags: TCP.ACK, seq: C + 1 + 100_000, ack: S + 1, data: bytes(10) }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: S + 1, ack: C + 1 + 500_000 }, 'server')).toBe(1);
    expect(drops()).toBe(0);
  });

  it('starts over when a new SYN reuses a closed 4-tuple with another ISN', () => {
    const { f, sent, drops, state } = established();
    expect(sent({ flags: TCP.RST, seq: C + 1 }, 'client')).toBe(1);
    expect(state()).toBe('CLOSE');
    const C2 = 900_000_000;
    const S2 = 300_000_000;
    expect(sent({ flags: TCP.SYN, seq: C2, window: 1000 }, 'client')).toBe(1);
    expect(sent({ flags: TCP.SYN | TCP.ACK, seq: S2, ack: C2 + 1, window: 2000 }, 'server')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: C2 + 1, ack: S2 + 1 }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK | TCP.PSH, seq: C2 + 1, ack: S2 + 1, data: bytes(100) }, 'client')).toBe(1);
    expect(sent({ flags: TCP.ACK, seq: S2 + 1, ack: C2 + 101, data: bytes(100) }, 'server')).toBe(1);
    expect(state()).toBe('ESTABLISHED');
    // The old ISNs are out of this connection's window now.
    expect(sent({ flags: TCP.ACK, seq: C + 1, ack: S + 1, data: bytes(10) }, 'client')).toBe(0);
    expect(drops()).toBe(1);
    expect(f.lport).toBeGreaterThan(0);
  });

  it('compares a PROXY-shifted server ACK in the client sequence space', () => {
    const h = harness();
    const pt = ppSettings(2);
    h.apply(add(snapshot({ passthrough: pt })));
    const f = new Flow(h, 44000);
    f.client({ flags: TCP.SYN, seq: C, window: 1000 }, 0);
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1, window: 2000 }, 1);
    const hl = expectedHeader(pt, f).length;
    expect(f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }, 2)[0]!.payload.length).toBe(hl);
    expect(f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: bytes(100) }, 3)).toHaveLength(
      1,
    );
    // The server acknowledges header and data: C+1+hl+100 in its space, C+101 in the client's.
    expect(f.fromServer({ flags: TCP.ACK, seq: S + 1, ack: C + 1 + hl + 100, window: 2000 }, 4)).toHaveLength(
      1,
    );
    expect(f.fromServer({ flags: TCP.ACK, seq: S + 1, ack: C + 1 + hl + 101, window: 2000 }, 5)).toHaveLength(
      0,
    );
    // Its window counts from the ACK in the client's space: C+101+2000 is the client's last byte.
    expect(f.client({ flags: TCP.ACK, seq: C + 101 + 2000, ack: S + 1, data: bytes(1) }, 6)).toHaveLength(1);
    expect(f.client({ flags: TCP.ACK, seq: C + 101 + 2002, ack: S + 1, data: bytes(1) }, 7)).toHaveLength(0);
    expect(h.counters().drop_out_of_window).toBe(2);
  });

  it('takes a SYNPROXY client ACK in the cookie sequence space and the server window from its SYN-ACK', () => {
    const h = harness();
    h.apply(add(snapshot({ synproxy: true })));
    const client = (f: Seg, now = 0) =>
      h.inject('wan', tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 45000, dport: 80, ...f }), now);
    const [sa] = client({ flags: TCP.SYN, seq: C, window: 1000 });
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 1 }, 1);
    const lport = parseFrame(syn!.frame).tcp!.sport;
    const server = (f: Seg, now = 0) => h.inject('lan', serverSeg(0, lport, f), now);
    expect(server({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1, window: 2000 }, 2)).toHaveLength(2);
    expect(h.connections()[0]!.state).toBe('ESTABLISHED');
    // The client's ACKs are cookie-based: cookie+1 is the server's S+1.
    expect(
      server({ flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: C + 1, window: 2000, data: bytes(100) }, 3),
    ).toHaveLength(1);
    expect(client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 101 }, 4)).toHaveLength(1);
    expect(client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 102 }, 5)).toHaveLength(0);
    // The window the SYN-ACK offered bounds the client's data: C+1+2000 passes, C+1+2001 does not.
    expect(client({ flags: TCP.ACK, seq: C + 1 + 2000, ack: cookie + 101, data: bytes(1) }, 6)).toHaveLength(
      1,
    );
    expect(client({ flags: TCP.ACK, seq: C + 1 + 2001, ack: cookie + 101, data: bytes(1) }, 7)).toHaveLength(
      0,
    );
    expect(h.counters().drop_out_of_window).toBe(2);
  });
});
