// Servers taken out of service, packet by packet: `retired` expire and drain end a
// connection with a RST to each side, in that side's own sequence space (plain FULLNAT,
// SYNPROXY's s2c_delta, a PROXY header's c2s_delta), free it and its local port, count it
// and say why in connection:closed; drain resets idle connections at idleClose and the rest
// at the deadline, with the harness's clock. Also connection:failed.
import type { ServiceSnapshot } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import type { EmittedFrame, PacketHarness } from '../harness.js';
import { nativeUnavailableReason } from '../native.js';
import {
  add,
  CLIENT,
  fromClient,
  harness,
  LADDR,
  LAN_MAC,
  SERVERS,
  serverSeg,
  snapshot,
  type SnapshotInput,
  update,
  VIP,
  WAN_MAC,
} from './fixtures.js';
import { parseFrame, TCP, tcpFrame, udpFrame, type ParsedFrame } from './frames.js';
import { expectedHeader, Flow, ppSettings } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

const C = 1000; // client ISN
const S = 5000; // server ISN
const S0 = `${SERVERS[0]!.ip}:8080`;
const S1 = `${SERVERS[1]!.ip}:8080`;
const two = [
  { address: SERVERS[0]!.ip, port: 8080 },
  { address: SERVERS[1]!.ip, port: 8080 },
];

/** A snapshot with its own drain policy. */
const withDrain = (input: SnapshotInput, idleCloseMs: number, deadlineMs: number): ServiceSnapshot => ({
  ...snapshot(input),
  drain: { idleCloseMs, deadlineMs },
});

/** Server 0 taken out: weight 0, draining, out of the plan; retired with `action`. */
const retire0 = (action: 'drain' | 'expire', version = 2): SnapshotInput => ({
  servers: [{ ...two[0]!, weight: 0, draining: action === 'drain' }, two[1]!],
  plan: { kind: 'sequence', sequence: [1] },
  retired: [{ server: S0, action }],
  version,
});

/** Opens and establishes a connection, then one request and one response. */
function established(f: Flow, t = 0, req = 10, resp = 20): void {
  f.client({ flags: TCP.SYN, seq: C }, t);
  f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, t);
  f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }, t);
  f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: Buffer.alloc(req, 0x61) }, t);
  f.fromServer({ flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: C + 1 + req, data: Buffer.alloc(resp, 0x62) }, t);
  f.client({ flags: TCP.ACK, seq: C + 1 + req, ack: S + 1 + resp }, t);
}

interface Rst {
  port: string;
  from: string;
  to: string;
  seq: number;
  ack: number;
  flags: number;
}

/** The RSTs among emitted frames, each checked for well-formedness on the way. */
function resets(out: EmittedFrame[]): Rst[] {
  return out
    .map((e) => ({ e, p: parseFrame(e.frame) }))
    .filter(({ p }) => p.tcp && p.tcp.flags & TCP.RST)
    .map(({ e, p }) => {
      wellFormed(e, p);
      return {
        port: e.port,
        from: `${p.ip!.src}:${p.tcp!.sport}`,
        to: `${p.ip!.dst}:${p.tcp!.dport}`,
        seq: p.tcp!.seq,
        ack: p.tcp!.ack,
        flags: p.tcp!.flags,
      };
    });
}

function wellFormed(e: EmittedFrame, p: ParsedFrame): void {
  expect(e.frame.length).toBe(60); // Ethernet minimum, IP total length 40
  expect(e.frame.readUInt16BE(16)).toBe(40);
  expect(p.ip).toMatchObject({ proto: 6, ttl: 64, checksumOk: true });
  expect(p.tcp).toMatchObject({ window: 0, checksumOk: true });
  expect(p.tcp!.options.length).toBe(0);
  expect(p.payload.length).toBe(0);
  expect(p.eth).toEqual(
    e.port === 'wan'
      ? { src: WAN_MAC, dst: CLIENT.mac, type: 0x0800 }
      : { src: LAN_MAC, dst: SERVERS.find((s) => s.ip === p.ip!.dst)!.mac, type: 0x0800 },
  );
}

const RA = TCP.RST | TCP.ACK;
const toClient = (cport: number, seq: number, ack: number): Rst => ({
  port: 'wan',
  from: `${VIP}:80`,
  to: `${CLIENT.ip}:${cport}`,
  seq,
  ack,
  flags: RA,
});
const toServer = (f: Flow, seq: number, ack: number): Rst => ({
  port: 'lan',
  from: `${LADDR}:${f.lport}`,
  to: `${SERVERS[f.server]!.ip}:8080`,
  seq,
  ack,
  flags: RA,
});

describe.skipIf(need.skip)(`servers taken out: expire, packet by packet${need.note}`, () => {
  it('resets both sides at the sequence each acknowledged, frees the connection and its local port', () => {
    const h = harness({ localPorts: { min: 2000, max: 2000 }, connectionEvents: true });
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 40000);
    established(f, 5);
    expect(f.lport).toBe(2000);
    // The only local port is taken: a second client cannot be served.
    expect(
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40001, dport: 80, flags: TCP.SYN }),
      ),
    ).toEqual([]);
    expect(h.counters().drop_local_ports_exhausted).toBe(1);
    h.connectionEvents();

    const out = h.apply(update(withDrain(retire0('expire'), 1000, 10_000)));
    // Client: the server's stream ends at S+1+20, which the client acknowledged; its own at C+1+10.
    expect(resets(out)).toEqual([toClient(40000, S + 21, C + 11), toServer(f, C + 11, S + 21)]);
    expect(out).toHaveLength(2);
    expect(h.connections()).toEqual([]);
    expect(h.counters()).toMatchObject({ conns_retired: 1, conns_reset: 1, rst_sent: 2, connections: 0 });
    expect(h.connectionEvents()).toEqual([
      {
        opened: false,
        service: 'web',
        server: S0,
        client: `${CLIENT.ip}:40000`,
        durationMs: 0,
        reason: 'expire',
      },
    ]);
    expect(h.services()[0]!.servers.map((s) => [s.activeConns, s.inactiveConns])).toEqual([
      [0, 0],
      [0, 0],
    ]);
    // The local port is free again: the next client gets it (server 1: the plan has only it).
    const [syn] = h.inject(
      'wan',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40002, dport: 80, flags: TCP.SYN }),
      6,
    );
    expect(parseFrame(syn!.frame)).toMatchObject({
      ip: { src: LADDR, dst: SERVERS[1]!.ip },
      tcp: { sport: 2000 },
    });
    // A late segment of the reset connection finds nothing.
    expect(f.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 7)).toEqual([]);
    expect(h.counters().drop_no_conn).toBe(1);
  });

  it('sends a second RST where the stream ends when the receiver has not acknowledged all of it', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 40010);
    established(f);
    // 100 bytes in flight toward the server, not acknowledged yet (lost, or its ACK delayed).
    f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 11, ack: S + 21, data: Buffer.alloc(100, 1) }, 1);
    const out = h.apply(update(snapshot(retire0('expire'))));
    // The server's RCV.NXT is C+11 if the data was lost, C+111 if only its ACK is late: one
    // RST each, the exact one resets it (RFC 5961), the other draws at most a challenge ACK.
    expect(resets(out)).toEqual([
      toClient(40010, S + 21, C + 111),
      toServer(f, C + 11, S + 21),
      toServer(f, C + 111, S + 21),
    ]);
    expect(h.counters()).toMatchObject({ conns_reset: 1, rst_sent: 3 });
  });

  it('follows sequence numbers across the 2^32 wrap, and never back for a retransmission', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 40015);
    const c = 0xffff_fff0; // the client's stream wraps after 15 bytes
    const s = 0xffff_ffe0;
    f.client({ flags: TCP.SYN, seq: c }, 0);
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: s, ack: c + 1 }, 0);
    f.client({ flags: TCP.ACK, seq: c + 1, ack: s + 1 }, 0);
    f.client({ flags: TCP.ACK | TCP.PSH, seq: c + 1, ack: s + 1, data: Buffer.alloc(40, 1) }, 1); // ends at 0x19
    f.fromServer({ flags: TCP.ACK | TCP.PSH, seq: s + 1, ack: 0x19, data: Buffer.alloc(64, 2) }, 2); // ends at 0x21
    f.client({ flags: TCP.ACK, seq: 0x19, ack: 0x21 }, 3);
    // Old segments again (a retransmission, a stale ACK) move nothing back.
    f.client({ flags: TCP.ACK | TCP.PSH, seq: c + 1, ack: s + 1, data: Buffer.alloc(40, 1) }, 4);
    f.fromServer({ flags: TCP.ACK, seq: s + 1, ack: c + 1 }, 5);
    const out = h.apply(update(snapshot(retire0('expire'))));
    expect(resets(out)).toEqual([toClient(40015, 0x21, 0x19), toServer(f, 0x19, 0x21)]);
  });

  it('resets a half-open connection toward the server only, without ACK, and a closed one not at all', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const half = new Flow(h, 40020);
    half.client({ flags: TCP.SYN, seq: C }, 0); // server 0, never answered
    h.inject(
      'wan',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40021, dport: 80, flags: TCP.SYN }),
      0,
    ); // server 1
    const closed = new Flow(h, 40022);
    established(closed); // server 0
    closed.fromServer({ flags: TCP.RST | TCP.ACK, seq: S + 21, ack: C + 11 }, 1); // CLOSE
    const out = h.apply(update(snapshot(retire0('expire'))));
    expect(resets(out)).toEqual([{ ...toServer(half, C + 1, 0), flags: TCP.RST }]);
    expect(h.counters()).toMatchObject({ conns_retired: 2, conns_reset: 1, rst_sent: 1 });
    expect(h.connections().map((c) => c.server)).toEqual([S1]);
  });

  it('SYNPROXY: the RST toward the client is in the cookie sequence space (s2c_delta)', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two, synproxy: true })));
    const f = new Flow(h, 40030);
    const cookie = f.client({ flags: TCP.SYN, seq: C }, 0)[0]!.tcp!.seq;
    f.lport = 0;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 1 }, 1); // the server's SYN: learns lport
    expect(f.frames).toHaveLength(2);
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, 2);
    const [req] = f.client(
      { flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: cookie + 1, data: Buffer.alloc(10, 1) },
      3,
    );
    expect(req!.tcp).toMatchObject({ seq: C + 1, ack: S + 1 }); // translated toward the server
    f.fromServer({ flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: C + 11, data: Buffer.alloc(20, 2) }, 4);
    f.client({ flags: TCP.ACK, seq: C + 11, ack: cookie + 21 }, 5);
    expect(cookie).not.toBe(S);

    const out = h.apply(update(snapshot({ synproxy: true, ...retire0('expire') })));
    expect(resets(out)).toEqual([toClient(40030, cookie + 21, C + 11), toServer(f, C + 11, S + 21)]);
  });

  it('SYNPROXY: a handshake still opening is reset toward the client at its cookie', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two, synproxy: true })));
    const f = new Flow(h, 40031);
    const cookie = f.client({ flags: TCP.SYN, seq: C }, 0)[0]!.tcp!.seq;
    f.lport = 0;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 1 }, 1);
    const out = h.apply(update(snapshot({ synproxy: true, ...retire0('expire') })));
    // The server has our SYN only: RST at the client's ISN + 1 (acceptable in SYN-RECEIVED), no ACK.
    expect(resets(out)).toEqual([
      toClient(40031, cookie + 1, C + 1),
      { ...toServer(f, C + 1, 0), flags: TCP.RST },
    ]);
  });

  it('PROXY protocol: the RST toward the server counts the header (c2s_delta), the client’s does not', () => {
    const pt = ppSettings(1);
    const h = harness();
    h.apply(add(snapshot({ servers: two, passthrough: pt })));
    const f = new Flow(h, 40040);
    f.client({ flags: TCP.SYN, seq: C }, 0);
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, 1);
    const [ack] = f.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }, 2);
    const hl = expectedHeader(pt, f).length;
    expect(ack!.payload.length).toBe(hl);
    f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: S + 1, data: Buffer.alloc(10, 1) }, 3);
    f.fromServer(
      { flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: C + 1 + hl + 10, data: Buffer.alloc(20, 2) },
      4,
    );
    f.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 5);

    const out = h.apply(update(snapshot({ passthrough: pt, ...retire0('expire') })));
    expect(resets(out)).toEqual([toClient(40040, S + 21, C + 11), toServer(f, C + 11 + hl, S + 21)]);
  });

  it('PROXY protocol and SYNPROXY on one connection: both deltas, each side in its own space', () => {
    const pt = ppSettings(2);
    const h = harness();
    h.apply(add(snapshot({ servers: two, synproxy: true, passthrough: pt })));
    const f = new Flow(h, 40050);
    const cookie = f.client({ flags: TCP.SYN, seq: C }, 0)[0]!.tcp!.seq;
    f.lport = 0;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 1 }, 1);
    const out3 = f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, 2);
    const hl = expectedHeader(pt, f).length;
    expect(out3[0]!.payload.length).toBe(hl); // the replayed ACK carries the header
    f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 1, ack: cookie + 1, data: Buffer.alloc(10, 1) }, 3);
    f.fromServer(
      { flags: TCP.ACK | TCP.PSH, seq: S + 1, ack: C + 1 + hl + 10, data: Buffer.alloc(20, 2) },
      4,
    );
    f.client({ flags: TCP.ACK, seq: C + 11, ack: cookie + 21 }, 5);

    const out = h.apply(update(snapshot({ synproxy: true, passthrough: pt, ...retire0('expire') })));
    expect(resets(out)).toEqual([toClient(40050, cookie + 21, C + 11), toServer(f, C + 11 + hl, S + 21)]);
  });

  it('UDP: sessions of an expired server just end, with nothing sent', () => {
    const h = harness({ connectionEvents: true });
    h.apply(add(snapshot({ protocol: 'udp', port: 53, servers: two })));
    const q = h.inject(
      'wan',
      udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33000, dport: 53, data: Buffer.from('q') }),
    );
    expect(q).toHaveLength(1);
    h.connectionEvents();
    expect(h.apply(update({ ...snapshot({ protocol: 'udp', port: 53, ...retire0('expire') }) }))).toEqual([]);
    expect(h.connections()).toEqual([]);
    expect(h.counters()).toMatchObject({ conns_retired: 1, conns_reset: 0, rst_sent: 0 });
    expect(h.connectionEvents().map((e) => e.reason)).toEqual(['expire']);
  });

  it('with two workers, each resets its own connections', () => {
    const h = harness({ workers: 2 });
    h.apply(add(snapshot({ servers: two, plan: { kind: 'sequence', sequence: [0] } })));
    const lports: number[] = [];
    for (const [w, cport] of [
      [0, 40060],
      [1, 40061],
    ] as const) {
      const [syn] = h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: cport, dport: 80, flags: TCP.SYN, seq: C }),
        0,
        w,
      );
      const lport = parseFrame(syn!.frame).tcp!.sport;
      lports.push(lport);
      const server = (flags: number, seq: number, ack: number) =>
        h.inject('lan', serverSeg(0, lport, { flags, seq, ack }), 0, w);
      server(TCP.SYN | TCP.ACK, S, C + 1);
      h.inject(
        'wan',
        tcpFrame(fromClient, {
          src: CLIENT.ip,
          dst: VIP,
          sport: cport,
          dport: 80,
          flags: TCP.ACK,
          seq: C + 1,
          ack: S + 1,
        }),
        0,
        w,
      );
    }
    expect(h.workerCounters().map((c) => c.connections)).toEqual([1, 1]);
    const out = h.apply(update(snapshot(retire0('expire'))));
    // Each worker's RSTs, sent by the worker whose local-port slice holds the connection.
    expect(out.map((o) => [o.worker, o.port, parseFrame(o.frame).tcp!.dport])).toEqual(
      [
        [lports[0]! % 2, 'wan', 40060],
        [lports[0]! % 2, 'lan', 8080],
        [lports[1]! % 2, 'wan', 40061],
        [lports[1]! % 2, 'lan', 8080],
      ].sort((a, b) => (a[0] as number) - (b[0] as number)),
    );
    expect(h.workerCounters().map((c) => [c.connections, c.conns_reset])).toEqual([
      [0, 1],
      [0, 1],
    ]);
  });
});

/** Injects a frame and returns the RSTs expiry sends at `now` (and checks the rest). */
function sweep(h: PacketHarness, now: number): { n: number; rsts: Rst[] } {
  const sent: EmittedFrame[] = [];
  const n = h.expire(now, sent);
  return { n, rsts: resets(sent) };
}

describe.skipIf(need.skip)(`servers taken out: drain, with the harness's clock${need.note}`, () => {
  it('resets an idle connection at idleClose, an active one at the deadline; new ones go elsewhere', () => {
    const h = harness({ connectionEvents: true });
    h.apply(add(snapshot({ servers: two })));
    const idle = new Flow(h, 41000);
    established(idle, 0); // server 0, then silent from t=0
    const other = new Flow(h, 41001);
    established(other, 0); // server 1
    const busy = new Flow(h, 41002);
    established(busy, 0); // server 0, talks every 500 ms
    expect([idle.server, other.server, busy.server]).toEqual([0, 1, 0]);
    h.connectionEvents();

    h.expire(1000); // the workers' clock: the drain starts now
    expect(h.apply(update(withDrain(retire0('drain'), 1500, 5000)))).toEqual([]);
    // Idle since t=0: due at 0 + 1500.
    let seq = C + 11;
    const talk = (now: number) => {
      busy.client({ flags: TCP.ACK | TCP.PSH, seq, ack: S + 21, data: Buffer.from('x') }, now);
      seq += 1;
      busy.fromServer({ flags: TCP.ACK, seq: S + 21, ack: seq }, now);
    };
    talk(1450);
    expect(sweep(h, 1499)).toEqual({ n: 0, rsts: [] });
    expect(h.connections()).toHaveLength(3);
    const at1500 = sweep(h, 1500);
    expect(at1500.rsts).toEqual([toClient(41000, S + 21, C + 11), toServer(idle, C + 11, S + 21)]);
    expect(at1500.n).toBe(0); // drained, not expired
    expect(h.connections().map((c) => c.client)).toEqual([`${CLIENT.ip}:41001`, `${CLIENT.ip}:41002`]);

    // A new client goes to server 1: server 0 takes no new connections.
    const fresh = new Flow(h, 41003);
    fresh.client({ flags: TCP.SYN, seq: C }, 1600);
    expect(fresh.server).toBe(1);

    for (let t = 1900; t < 6000; t += 500) {
      talk(t);
      expect(sweep(h, t).rsts).toEqual([]);
    }
    expect(sweep(h, 5999).rsts).toEqual([]);
    // The deadline (1000 + 5000): the busy one goes too, at the sequence numbers it reached.
    expect(sweep(h, 6000).rsts).toEqual([toClient(41002, S + 21, seq), toServer(busy, seq, S + 21)]);
    expect(
      h
        .connections()
        .map((c) => c.client)
        .sort(),
    ).toEqual([`${CLIENT.ip}:41001`, `${CLIENT.ip}:41003`]);
    expect(h.counters()).toMatchObject({
      conns_drain_idle: 1,
      conns_drain_deadline: 1,
      conns_reset: 2,
      rst_sent: 4,
    });
    const closed = h.connectionEvents().filter((e) => !e.opened);
    expect(closed.map((e) => [e.client, e.server, e.reason, e.durationMs])).toEqual([
      [`${CLIENT.ip}:41000`, S0, 'drain-idle', 1500],
      [`${CLIENT.ip}:41002`, S0, 'drain-deadline', 6000],
    ]);
  });

  it('an idle connection that talks again moves its idle-close later', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 41010);
    established(f, 0);
    h.expire(100);
    h.apply(update(withDrain(retire0('drain'), 1000, 60_000)));
    expect(sweep(h, 500).rsts).toEqual([]); // filed at 0 + 1000
    f.client({ flags: TCP.ACK | TCP.PSH, seq: C + 11, ack: S + 21, data: Buffer.from('y') }, 900);
    expect(sweep(h, 1000).rsts).toEqual([]); // it spoke at 900: now due at 1900
    expect(sweep(h, 1899).rsts).toEqual([]);
    // The server never acknowledged 'y': a second RST at the end of the client's stream.
    expect(sweep(h, 1900).rsts).toEqual([
      toClient(41010, S + 21, C + 12),
      toServer(f, C + 11, S + 21),
      toServer(f, C + 12, S + 21),
    ]);
  });

  it('a drained server back in service keeps its connections', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 41020);
    established(f, 0);
    h.expire(100);
    h.apply(update(withDrain(retire0('drain'), 1000, 2000)));
    expect(sweep(h, 500).rsts).toEqual([]);
    h.apply(update(withDrain({ servers: two, version: 3 }, 1000, 2000)));
    expect(sweep(h, 1000).rsts).toEqual([]);
    expect(sweep(h, 5000).rsts).toEqual([]);
    expect(h.connections()).toHaveLength(1);
    expect(h.counters()).toMatchObject({ conns_drain_idle: 0, conns_drain_deadline: 0 });
  });

  it('drains the connections of a server removed from the service (onFailure: drain)', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    const f = new Flow(h, 41030);
    established(f, 0);
    h.expire(50);
    h.apply(
      update(
        withDrain({ servers: [two[1]!], retired: [{ server: S0, action: 'drain' }], version: 2 }, 1000, 2000),
      ),
    );
    expect(h.connections()).toHaveLength(1);
    expect(sweep(h, 999).rsts).toEqual([]);
    expect(sweep(h, 1000).rsts).toEqual([toClient(41030, S + 21, C + 11), toServer(f, C + 11, S + 21)]);
  });

  it('UDP: an idle session of a drained server just ends', () => {
    const h = harness();
    h.apply(add(snapshot({ protocol: 'udp', port: 53, servers: two })));
    h.inject(
      'wan',
      udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33010, dport: 53, data: Buffer.from('q') }),
      0,
    );
    h.expire(10);
    h.apply(update(withDrain({ protocol: 'udp', port: 53, ...retire0('drain') }, 300, 10_000)));
    expect(sweep(h, 299)).toEqual({ n: 0, rsts: [] });
    expect(h.connections()).toHaveLength(1);
    expect(sweep(h, 300)).toEqual({ n: 0, rsts: [] });
    expect(h.connections()).toEqual([]);
    expect(h.counters()).toMatchObject({ conns_drain_idle: 1, rst_sent: 0 });
  });

  it('with two workers, each drains its own connections', () => {
    const h = harness({ workers: 2 });
    h.apply(add(snapshot({ servers: two })));
    for (const [w, cport] of [
      [0, 41040],
      [1, 41041],
    ] as const)
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: cport, dport: 80, flags: TCP.SYN, seq: C }),
        0,
        w,
      );
    // Each worker's own rr cursor: both connections go to server 0.
    expect(h.connections().map((c) => c.server)).toEqual([S0, S0]);
    h.expire(100);
    h.apply(update(withDrain(retire0('drain'), 1000, 5000)));
    const sent: EmittedFrame[] = [];
    h.expire(999, sent);
    expect(h.connections()).toHaveLength(2);
    h.expire(1000, sent);
    expect(h.connections()).toEqual([]);
    expect(sent.map((s) => s.worker).sort()).toEqual([0, 1]);
    expect(h.workerCounters().map((c) => c.conns_drain_idle)).toEqual([1, 1]);
  });
});

describe.skipIf(need.skip)(`connection:failed${need.note}`, () => {
  it('a server that never answers: timeout, with the client, alongside the health signal', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two })));
    h.inject(
      'wan',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 42000, dport: 80, flags: TCP.SYN }),
      0,
    );
    h.expire(30_000);
    expect(h.signals()).toEqual([{ service: 'web', server: S0, ok: false, reason: 'timeout' }]);
    // Recorded without connectionEvents: failures are as rare as the signals that go with them.
    expect(h.connectionEvents()).toEqual([
      {
        opened: false,
        failed: true,
        reason: 'timeout',
        retried: false,
        service: 'web',
        server: S0,
        client: `${CLIENT.ip}:42000`,
        durationMs: 0,
      },
    ]);
  });

  it('SYNPROXY: a refusal moved to another server says retried; the last one does not', () => {
    const h = harness();
    h.apply(add(snapshot({ servers: two, synproxy: true })));
    const f = new Flow(h, 42010);
    const cookie = f.client({ flags: TCP.SYN, seq: C }, 0)[0]!.tcp!.seq;
    f.lport = 0;
    f.client({ flags: TCP.ACK, seq: C + 1, ack: cookie + 1 }, 1);
    f.fromServer({ flags: TCP.RST | TCP.ACK, seq: 0, ack: C + 1 }, 2);
    f.server = 1;
    f.fromServer({ flags: TCP.RST | TCP.ACK, seq: 0, ack: C + 1 }, 3);
    expect(h.connectionEvents().map((e) => [e.server, e.reason, e.retried, e.client])).toEqual([
      [S0, 'refused', true, `${CLIENT.ip}:42010`],
      [S1, 'refused', false, `${CLIENT.ip}:42010`],
    ]);
    expect(h.signals().map((s) => [s.server, s.reason])).toEqual([
      [S0, 'refused'],
      [S1, 'refused'],
    ]);
  });

  it('UDP: a session never answered is oneway-expired', () => {
    const h = harness();
    h.apply(add(snapshot({ protocol: 'udp', port: 53, servers: two })));
    h.inject(
      'wan',
      udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33020, dport: 53, data: Buffer.from('q') }),
      0,
    );
    h.expire(20_000);
    expect(h.connectionEvents()).toMatchObject([{ failed: true, reason: 'oneway-expired', server: S0 }]);
  });
});
