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
  fromServer,
  harness,
  LADDR,
  LAN_MAC,
  remove,
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
    // A late segment of the reset connection finds nothing, and draws a RST of its own (had
    // the client missed ours, this one ends its side).
    const [late, ...more] = f.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 7);
    expect(more).toEqual([]);
    expect(late!.tcp).toMatchObject({ seq: S + 21, flags: TCP.RST, checksumOk: true });
    expect(h.counters()).toMatchObject({ drop_no_conn: 1, rst_unknown_sent: 1 });
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

/** Exactly `n` table slots per worker loop iteration: the walk's progress is the test's to count. */
const slotsPerIteration = (n: number) => ({ expireChunk: { slots: n, connCost: 0, resetCost: 0 } });

describe.skipIf(need.skip)(`servers taken out: expire walks the table a chunk at a time${need.note}`, () => {
  it('resets a chunk per loop iteration; a segment of a connection not reached yet ends it as it arrives', () => {
    const h = harness({
      maxConnections: 8,
      localPorts: { min: 2000, max: 2005 },
      connectionEvents: true,
      ...slotsPerIteration(2),
    });
    h.apply(add(snapshot({ servers: two })));
    // Slots 0..5, servers 0, 1, 0, 1, 0, 1: server 0's in slots 0, 2 and 4.
    const flows = Array.from({ length: 6 }, (_, i) => {
      const f = new Flow(h, 41100 + i);
      established(f);
      return f;
    });
    expect(flows.map((f) => f.server)).toEqual([0, 1, 0, 1, 0, 1]);
    const [f0, , f2, , f4] = flows as [Flow, Flow, Flow, Flow, Flow, Flow];
    // Server 0 sends 30 bytes more to f4's client, not acknowledged yet.
    f4.fromServer({ flags: TCP.ACK | TCP.PSH, seq: S + 21, ack: C + 11, data: Buffer.alloc(30, 3) }, 1);
    h.connectionEvents();

    // The worker's next loop iteration: slots 0 and 1.
    const first = h.apply(update(snapshot(retire0('expire'))));
    expect(resets(first)).toEqual([toClient(41100, S + 21, C + 11), toServer(f0, C + 11, S + 21)]);
    expect(first).toHaveLength(2);
    expect(h.expireWalking()).toEqual([true]);
    expect(h.connections()).toHaveLength(5);
    // Slots 2 and 3.
    const second = h.step();
    expect(resets(second)).toEqual([toClient(41102, S + 21, C + 11), toServer(f2, C + 11, S + 21)]);
    expect(second).toHaveLength(2);

    // Before the walk reaches slot 4, f4's client acknowledges the 30 bytes and sends 5 of
    // its own: the connection ends now, the segment does not reach the expired server. Its
    // acknowledgement places the client's RST (one, at S+51, where two were due before it);
    // its data does not count as the server's to receive (one RST toward it, at C+11).
    const early = f4.client(
      { flags: TCP.ACK | TCP.PSH, seq: C + 11, ack: S + 51, data: Buffer.alloc(5, 4) },
      2,
    );
    expect(resets(early.map((e) => ({ port: e.port, frame: e.raw, worker: 0 })))).toEqual([
      toClient(41104, S + 51, C + 11),
      toServer(f4, C + 11, S + 51),
    ]);
    expect(early).toHaveLength(2); // the RSTs only: the segment went nowhere, slots 4 and 5 held no more
    expect(h.counters()).toMatchObject({
      drop_conn_retired: 1,
      conns_retired: 3,
      conns_reset: 3,
      rst_sent: 6,
    });

    // Slots 6 and 7: a whole lap, the walk is over.
    expect(h.step()).toEqual([]);
    expect(h.expireWalking()).toEqual([false]);
    expect(h.connections().map((c) => [c.client, c.server])).toEqual(
      [41101, 41103, 41105].map((p) => [`${CLIENT.ip}:${p}`, S1]),
    );
    expect(
      h
        .connectionEvents()
        .filter((e) => !e.opened)
        .map((e) => [e.client, e.reason]),
    ).toEqual([41100, 41102, 41104].map((p) => [`${CLIENT.ip}:${p}`, 'expire']));
    expect(h.services()[0]!.servers.map((s) => [s.server, s.activeConns, s.inactiveConns])).toEqual([
      [S0, 0, 0],
      [S1, 3, 0],
    ]);
    // The three local ports are free again, and a late segment of a reset connection finds nothing.
    const lports = [41110, 41111, 41112].map((cport) => {
      const [syn] = h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: cport, dport: 80, flags: TCP.SYN, seq: C }),
        3,
      );
      return parseFrame(syn!.frame).tcp!.sport;
    });
    expect(lports.sort()).toEqual([f0.lport, f2.lport, f4.lport].sort());
    const late = f0.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 4);
    expect(late.map((e) => e.tcp)).toEqual([expect.objectContaining({ seq: S + 21, flags: TCP.RST })]);
    expect(h.counters()).toMatchObject({ drop_no_conn: 1, rst_unknown_sent: 1 });
  });

  it('a server segment of a connection not reached yet ends it too; a UDP datagram ends its session', () => {
    const h = harness({ maxConnections: 8, ...slotsPerIteration(1) });
    const first = { kind: 'sequence', sequence: [0] } as const;
    h.apply(add(snapshot({ servers: two, plan: first })));
    h.apply(add(snapshot({ name: 'dns', protocol: 'udp', port: 53, servers: two, plan: first })));
    const a = new Flow(h, 41120); // slot 0
    established(a);
    const b = new Flow(h, 41121); // slot 1
    established(b);
    // 7 bytes from b's client that server 0 has not acknowledged yet.
    b.client({ flags: TCP.ACK | TCP.PSH, seq: C + 11, ack: S + 21, data: Buffer.alloc(7, 1) }, 1);
    const query = (sport: number) =>
      h.inject(
        'wan',
        udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 53, data: Buffer.from('q') }),
      );
    expect(query(33001)).toHaveLength(1); // slot 2
    const [sent] = query(33002); // slot 3
    const udpLport = parseFrame(sent!.frame).udp!.sport;

    const retire = (name: string, protocol: 'tcp' | 'udp', port: number, version: number) =>
      update(snapshot({ name, protocol, port, ...retire0('expire', version) }));
    // web loses server 0: the walk's first iteration looks at slot 0.
    expect(resets(h.apply(retire('web', 'tcp', 80, 2)))).toEqual([
      toClient(41120, S + 21, C + 11),
      toServer(a, C + 11, S + 21),
    ]);
    // Server 0 acknowledges b's 7 bytes and sends 10 more: b ends now, the segment goes no
    // further. Its acknowledgement places the server's RST (one, at C+18: two were due
    // before it); its data does not count as the client's to receive (the client's at S+21).
    const early = b.fromServer(
      { flags: TCP.ACK | TCP.PSH, seq: S + 21, ack: C + 18, data: Buffer.alloc(10, 2) },
      2,
    );
    expect(resets(early.map((e) => ({ port: e.port, frame: e.raw, worker: 0 })))).toEqual([
      toClient(41121, S + 21, C + 18),
      toServer(b, C + 18, S + 21),
    ]);
    expect(early).toHaveLength(2);
    // dns loses server 0 too: its walk starts at slot 2, where the cursor is, and ends the
    // session there; a datagram from the server for the one in slot 3 ends it as it arrives.
    expect(h.apply(retire('dns', 'udp', 53, 2))).toEqual([]);
    expect(h.connections().map((c) => c.client)).toEqual([`${CLIENT.ip}:33002`]);
    const reply = udpFrame(fromServer(0), {
      src: SERVERS[0]!.ip,
      dst: LADDR,
      sport: 8080,
      dport: udpLport,
      data: Buffer.from('a'),
    });
    expect(h.inject('lan', reply, 3)).toEqual([]);
    expect(h.connections()).toEqual([]);
    expect(h.counters()).toMatchObject({
      drop_conn_retired: 2,
      conns_retired: 4,
      conns_reset: 2,
      rst_sent: 4,
    });
    // web's lap ends at slot 7 (four more iterations), dns's at slot 1 (two after that).
    for (let i = 0; i < 5; i++) {
      expect(h.step()).toEqual([]);
      expect(h.expireWalking()).toEqual([true]);
    }
    expect(h.step()).toEqual([]);
    expect(h.expireWalking()).toEqual([false]);
  });

  it('a segment outside the window ends nothing: the walk resets the connection where it stood', () => {
    const h = harness({ maxConnections: 8, ...slotsPerIteration(1) });
    h.apply(add(snapshot({ servers: two, plan: { kind: 'sequence', sequence: [0] } })));
    h.inject(
      'wan',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 41125, dport: 80, flags: TCP.SYN, seq: C }),
    ); // slot 0, a handshake that never ends
    const f = new Flow(h, 41126); // slot 1
    established(f);
    expect(h.apply(update(snapshot(retire0('expire'))))).toHaveLength(1); // slot 0: its RST toward the server
    // A forged segment acknowledging what the server never sent: dropped before it can place
    // or end anything; the same iteration's walk (slot 1) resets f where it stood.
    const out = f.client({ flags: TCP.ACK, seq: C + 11, ack: S + 1_000_021 }, 1);
    expect(resets(out.map((e) => ({ port: e.port, frame: e.raw, worker: 0 })))).toEqual([
      toClient(41126, S + 21, C + 11),
      toServer(f, C + 11, S + 21),
    ]);
    expect(out).toHaveLength(2);
    expect(h.counters()).toMatchObject({ drop_out_of_window: 1, drop_conn_retired: 0, conns_retired: 2 });
  });

  it('a server back in service during the walk keeps its new connections; its old ones are still reset', () => {
    const h = harness({ maxConnections: 8, ...slotsPerIteration(1) });
    const only = (i: number) => ({ kind: 'sequence', sequence: [i] }) as const;
    h.apply(add(snapshot({ servers: two, plan: only(1) })));
    const x = new Flow(h, 41130); // slot 0, server 1
    established(x);
    const y = new Flow(h, 41131); // slot 1, server 1
    established(y);
    h.apply(update(snapshot({ servers: two, plan: only(0), version: 2 })));
    const f = new Flow(h, 41132); // slot 2, server 0
    established(f);
    const g = new Flow(h, 41133); // slot 3, server 0
    established(g);
    expect([x, y, f, g].map((c) => c.server)).toEqual([1, 1, 0, 0]);

    expect(h.apply(update(snapshot(retire0('expire', 3))))).toEqual([]); // slot 0
    // Server 0 is back (its health check passed again): slot 1.
    expect(h.apply(update(snapshot({ servers: two, plan: only(0), version: 4 })))).toEqual([]);
    // A new client goes to server 0, into slot 4, ahead of the walk; the walk's slot 2 is f's.
    const n = new Flow(h, 41134);
    const opened = n.client({ flags: TCP.SYN, seq: C }, 1);
    expect(n.server).toBe(0);
    expect(resets(opened.slice(1).map((e) => ({ port: e.port, frame: e.raw, worker: 0 })))).toEqual([
      toClient(41132, S + 21, C + 11),
      toServer(f, C + 11, S + 21),
    ]);
    // g, from before the expire, still ends as it speaks (slot 3, then the walk's own).
    const early = g.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 2);
    expect(resets(early.map((e) => ({ port: e.port, frame: e.raw, worker: 0 })))).toEqual([
      toClient(41133, S + 21, C + 11),
      toServer(g, C + 11, S + 21),
    ]);
    // The new connection is not the expire's: its handshake goes through while the walk
    // passes its slot (4) and the next (5).
    const synack = n.fromServer({ flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }, 3);
    expect(synack.map((e) => [e.port, e.tcp!.flags])).toEqual([['wan', TCP.SYN | TCP.ACK]]);
    const ack = n.client({ flags: TCP.ACK, seq: C + 1, ack: S + 1 }, 3);
    expect(ack.map((e) => [e.port, e.tcp!.flags])).toEqual([['lan', TCP.ACK]]);
    expect(h.step()).toEqual([]); // 6
    expect(h.expireWalking()).toEqual([true]);
    expect(h.step()).toEqual([]); // 7: the lap is done
    expect(h.expireWalking()).toEqual([false]);
    expect(h.connections().map((c) => [c.client, c.server])).toEqual([
      [`${CLIENT.ip}:41130`, S1],
      [`${CLIENT.ip}:41131`, S1],
      [`${CLIENT.ip}:41134`, S0],
    ]);
    // Server 0's statistics carried over to what serves it now: 3 connections since start.
    expect(h.services()[0]!.servers.map((s) => [s.server, s.conns, s.activeConns, s.inactiveConns])).toEqual([
      [S0, 3, 1, 0],
      [S1, 2, 2, 0],
    ]);
    expect(h.counters()).toMatchObject({ conns_retired: 2, drop_conn_retired: 1 });
  });

  it('another server expired during a walk is walked a whole lap from where the cursor stands', () => {
    const h = harness({ maxConnections: 8, ...slotsPerIteration(2) });
    h.apply(add(snapshot({ plan: { kind: 'sequence', sequence: [0, 1, 2] } })));
    // Slots 0..5: servers 0, 1, 2, 0, 1, 2.
    const flows = Array.from({ length: 6 }, (_, i) => {
      const f = new Flow(h, 41140 + i);
      established(f);
      return f;
    });
    expect(flows.map((f) => f.server)).toEqual([0, 1, 2, 0, 1, 2]);
    const cport = (out: EmittedFrame[]) =>
      resets(out)
        .filter((r) => r.port === 'wan')
        .map((r) => Number(r.to.split(':')[1]));
    const servers = (weights: number[], version: number, retired: string[]) => ({
      servers: SERVERS.map((s, i) => ({ address: s.ip, port: 8080, weight: weights[i]! })),
      plan: { kind: 'sequence' as const, sequence: weights.flatMap((w, i) => (w > 0 ? [i] : [])) },
      retired: retired.map((server) => ({ server, action: 'expire' as const })),
      version,
    });
    const S2 = `${SERVERS[2]!.ip}:8080`;
    expect(cport(h.apply(update(snapshot(servers([0, 1, 1], 2, [S0])))))).toEqual([41140]); // slots 0, 1
    // Server 1 goes too: its lap runs from slot 2 round to slot 1; server 0's ends at slot 7.
    expect(cport(h.apply(update(snapshot(servers([0, 0, 1], 3, [S1])))))).toEqual([41143]); // slots 2, 3
    expect(cport(h.step())).toEqual([41144]); // 4, 5
    expect(cport(h.step())).toEqual([]); // 6, 7: server 0's lap is done
    expect(h.expireWalking()).toEqual([true]);
    expect(cport(h.step())).toEqual([41141]); // 0, 1: server 1's connection behind where it started
    expect(h.expireWalking()).toEqual([false]);
    expect(h.connections().map((c) => [c.client, c.server])).toEqual([
      [`${CLIENT.ip}:41142`, S2],
      [`${CLIENT.ip}:41145`, S2],
    ]);
    expect(h.counters()).toMatchObject({ conns_retired: 4, conns_reset: 4, rst_sent: 8 });
  });

  it('a service removed during its walk: the walk still ends the expired server’s connections', () => {
    const h = harness({ maxConnections: 8, ...slotsPerIteration(2) });
    h.apply(add(snapshot({ servers: two })));
    const flows = Array.from({ length: 4 }, (_, i) => {
      const f = new Flow(h, 41150 + i);
      established(f);
      return f;
    });
    expect(flows.map((f) => f.server)).toEqual([0, 1, 0, 1]);
    expect(resets(h.apply(update(snapshot(retire0('expire')))))).toEqual([
      toClient(41150, S + 21, C + 11),
      toServer(flows[0]!, C + 11, S + 21),
    ]);
    // The service goes: its connections keep running until they end, as any removed
    // service's; the expire's still end (slots 2, 3).
    expect(resets(h.apply(remove('web')))).toEqual([
      toClient(41152, S + 21, C + 11),
      toServer(flows[2]!, C + 11, S + 21),
    ]);
    h.step();
    h.step();
    expect(h.expireWalking()).toEqual([false]);
    expect(h.connections().map((c) => c.client)).toEqual([41151, 41153].map((p) => `${CLIENT.ip}:${p}`));
    // Server 1's connection of the removed service still forwards.
    expect(flows[1]!.client({ flags: TCP.ACK, seq: C + 11, ack: S + 21 }, 1).map((e) => e.port)).toEqual([
      'lan',
    ]);
  });

  it('with two workers, each walks its own table and ends its own connections as they speak', () => {
    const h = harness({ workers: 2, maxConnections: 8, ...slotsPerIteration(1) }); // 4 slots each
    h.apply(add(snapshot({ servers: two, plan: { kind: 'sequence', sequence: [0] } })));
    // Two connections on each worker (slots 0 and 1 of its table), opened where their SYN landed.
    const conns = [0, 0, 1, 1].map((w, i) => {
      const cport = 41160 + i;
      const client = (flags: number, seq: number, ack: number) =>
        h.inject(
          'wan',
          tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: cport, dport: 80, flags, seq, ack }),
          0,
          w,
        );
      const lport = parseFrame(client(TCP.SYN, C, 0)[0]!.frame).tcp!.sport;
      h.inject('lan', serverSeg(0, lport, { flags: TCP.SYN | TCP.ACK, seq: S, ack: C + 1 }), 0, w);
      client(TCP.ACK, C + 1, S + 1);
      return { w, cport, lport };
    });
    expect(h.workerCounters().map((c) => c.connections)).toEqual([2, 2]);
    const who = (out: EmittedFrame[]) =>
      out.map((o) => [
        o.worker,
        o.port,
        parseFrame(o.frame).tcp!.flags & TCP.RST ? 'rst' : 'other',
        parseFrame(o.frame).tcp!.dport,
      ]);
    // Each worker's first iteration: its slot 0.
    expect(who(h.apply(update(snapshot(retire0('expire')))))).toEqual([
      [0, 'wan', 'rst', 41160],
      [0, 'lan', 'rst', 8080],
      [1, 'wan', 'rst', 41162],
      [1, 'lan', 'rst', 8080],
    ]);
    // The server writes on worker 1's second connection, received by worker 0: redirected to
    // its owner, which ends it; then each worker's next iteration (slot 1): worker 0's second.
    const late = conns[3]!;
    expect(
      who(h.inject('lan', serverSeg(0, late.lport, { flags: TCP.ACK, seq: S + 1, ack: C + 1 }), 1, 0)),
    ).toEqual([
      [1, 'wan', 'rst', 41163],
      [1, 'lan', 'rst', 8080],
      [0, 'wan', 'rst', 41161],
      [0, 'lan', 'rst', 8080],
    ]);
    expect(h.workerCounters().map((c) => [c.connections, c.conns_reset, c.drop_conn_retired])).toEqual([
      [0, 2, 0],
      [0, 2, 1],
    ]);
    h.step();
    expect(h.expireWalking()).toEqual([true, true]);
    h.step(); // slot 3: each worker's lap of its 4 slots is done
    expect(h.expireWalking()).toEqual([false, false]);
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
