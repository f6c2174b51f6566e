import { planHash, PlanExecutor, type LeastConnectionsPlan } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import {
  add,
  CLIENT,
  clientSeg,
  fromServer,
  harness,
  LADDR,
  LAN_MAC,
  SERVERS,
  serverSeg,
  snapshot,
  VIP,
  WAN_MAC,
} from './fixtures.js';
import { parseFrame, TCP, tcpFrame, type TcpFields } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`FULLNAT TCP, packet by packet${need.note}`, () => {
  it('rewrites a whole connection both ways: handshake, data, FIN', () => {
    const h = harness();
    h.apply(add(snapshot()));

    const [syn, ...more] = h.inject('wan', clientSeg(40000, { flags: TCP.SYN, seq: 1000 }), 0);
    expect(more).toHaveLength(0);
    expect(syn!.port).toBe('lan');
    const s = parseFrame(syn!.frame);
    expect(s.eth).toEqual({ src: LAN_MAC, dst: SERVERS[0]!.mac, type: 0x0800 });
    expect(s.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip, proto: 6, ttl: 64, checksumOk: true });
    expect(s.tcp).toMatchObject({ dport: 8080, seq: 1000, flags: TCP.SYN, checksumOk: true });
    const lport = s.tcp!.sport;
    expect(lport).toBeGreaterThanOrEqual(1024);
    expect(h.connections()).toEqual([
      expect.objectContaining({
        protocol: 'tcp',
        service: 'web',
        server: '10.2.0.11:8080',
        client: '10.1.0.2:40000',
        virtual: '10.1.0.100:80',
        local: `${LADDR}:${lport}`,
        state: 'SYN_RECV',
      }),
    ]);

    const server = (f: Partial<TcpFields> & { flags: number }) =>
      h.inject('lan', serverSeg(0, lport, { ...f }), 10);
    const [synAck] = server({ flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 });
    expect(synAck!.port).toBe('wan');
    const sa = parseFrame(synAck!.frame);
    expect(sa.eth).toEqual({ src: WAN_MAC, dst: CLIENT.mac, type: 0x0800 });
    expect(sa.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
    expect(sa.tcp).toMatchObject({ sport: 80, dport: 40000, seq: 5000, ack: 1001, checksumOk: true });
    expect(h.signals()).toEqual([{ service: 'web', server: '10.2.0.11:8080', ok: true, reason: 'answered' }]);

    h.inject('wan', clientSeg(40000, { flags: TCP.ACK, seq: 1001, ack: 5001 }), 20);
    expect(h.connections()[0]!.state).toBe('ESTABLISHED');
    expect(h.services()[0]!.servers[0]).toMatchObject({
      server: '10.2.0.11:8080',
      activeConns: 1,
      inactiveConns: 0,
    });

    const request = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    const [req] = h.inject(
      'wan',
      clientSeg(40000, { flags: TCP.ACK | TCP.PSH, seq: 1001, ack: 5001, data: request }),
      30,
    );
    const r = parseFrame(req!.frame);
    expect(r.tcp).toMatchObject({ sport: lport, dport: 8080, checksumOk: true });
    expect(r.ip!.checksumOk).toBe(true);
    expect(r.payload.equals(request)).toBe(true);

    const response = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n!'); // odd length: checksum padding
    const [resp] = server({
      flags: TCP.ACK | TCP.PSH,
      seq: 5001,
      ack: 1001 + request.length,
      data: response,
    });
    const rp = parseFrame(resp!.frame);
    expect(rp.tcp).toMatchObject({ sport: 80, dport: 40000, checksumOk: true });
    expect(rp.payload.equals(response)).toBe(true);

    // Client closes first: CLOSE_WAIT, then the server's FIN: TIME_WAIT (IPVS's table).
    h.inject(
      'wan',
      clientSeg(40000, { flags: TCP.FIN | TCP.ACK, seq: 1001 + request.length, ack: 5001 }),
      40,
    );
    expect(h.connections()[0]!.state).toBe('CLOSE_WAIT');
    const [fin] = server({
      flags: TCP.FIN | TCP.ACK,
      seq: 5001 + response.length,
      ack: 1002 + request.length,
    });
    expect(parseFrame(fin!.frame).tcp).toMatchObject({ flags: TCP.FIN | TCP.ACK, checksumOk: true });
    expect(h.connections()[0]!.state).toBe('TIME_WAIT');
    expect(h.services()).toEqual([
      expect.objectContaining({
        name: 'web',
        protocol: 'tcp',
        virtual: '10.1.0.100:80',
        plan: 'sequence',
        liveConns: 1,
        servers: [
          expect.objectContaining({
            server: '10.2.0.11:8080',
            weight: 1,
            activeConns: 0,
            inactiveConns: 1,
            conns: 1,
            inPkts: 4, // SYN, ACK, request, FIN
            outPkts: 3,
            inBytes: 4 * 40 + request.length,
            outBytes: 3 * 40 + response.length,
          }),
          expect.objectContaining({ server: '10.2.0.12:8080', conns: 0, inPkts: 0 }),
          expect.objectContaining({ server: '10.2.0.13:8080', conns: 0 }),
        ],
      }),
    ]);

    // TIME_WAIT expires (7 s by default) and gives the local port back.
    expect(h.expire(1000)).toBe(0);
    expect(h.expire(10_000)).toBe(1);
    expect(h.connections()).toEqual([]);
    const c = h.counters();
    expect(c).toMatchObject({
      conns_created: 1,
      conns_expired: 1,
      fullnat_in: 4,
      fullnat_out: 3,
      connections: 0,
    });
    expect(Object.entries(c).filter(([k, v]) => k.startsWith('drop_') && v !== 0)).toEqual([]);
  });

  it('keeps a retransmitted SYN on the server it chose, and walks the rr sequence per new connection', () => {
    const h = harness();
    h.apply(add(snapshot({ plan: { kind: 'sequence', sequence: [0, 1, 2, 1] } })));
    const dest = (sport: number) =>
      parseFrame(h.inject('wan', clientSeg(sport, { flags: TCP.SYN }))[0]!.frame).ip!.dst;
    expect([41000, 41001, 41002, 41003, 41004].map(dest)).toEqual([
      SERVERS[0]!.ip,
      SERVERS[1]!.ip,
      SERVERS[2]!.ip,
      SERVERS[1]!.ip,
      SERVERS[0]!.ip,
    ]);
    expect(dest(41001)).toBe(SERVERS[1]!.ip); // retransmit: same connection, cursor untouched
    expect(dest(41005)).toBe(SERVERS[1]!.ip);
    expect(h.counters().conns_created).toBe(6);
  });

  it('executes hash plans with the kernel planHash', () => {
    const h = harness();
    const table = [2, 0, 1, 1, -1, 0, 2];
    const fields = ['source-address', 'source-port'] as const;
    h.apply(add(snapshot({ plan: { kind: 'hash', fields, table } })));
    for (let sport = 42000; sport < 42040; sport++) {
      const want =
        table[
          planHash(fields, {
            sourceAddress: CLIENT.ip,
            sourcePort: sport,
            destinationAddress: VIP,
            destinationPort: 80,
          }) % table.length
        ]!;
      const out = h.inject('wan', clientSeg(sport, { flags: TCP.SYN }));
      if (want === -1) expect(out).toEqual([]);
      else expect(parseFrame(out[0]!.frame).ip!.dst).toBe(SERVERS[want]!.ip);
    }
    expect(h.counters().drop_no_server).toBeGreaterThan(0);
  });

  it('picks by live connection counts for least-connections plans (wlc)', () => {
    const h = harness();
    h.apply(add(snapshot({ plan: { kind: 'least-connections', formula: 'wlc', weights: [1, 2, 0] } })));
    const open = (sport: number) => {
      const s = parseFrame(h.inject('wan', clientSeg(sport, { flags: TCP.SYN, seq: 1 }))[0]!.frame);
      const i = SERVERS.findIndex((x) => x.ip === s.ip!.dst);
      h.inject(
        'lan',
        tcpFrame(fromServer(i), {
          src: s.ip!.dst,
          dst: LADDR,
          sport: 8080,
          dport: s.tcp!.sport,
          flags: TCP.SYN | TCP.ACK,
          ack: 2,
        }),
      );
      h.inject('wan', clientSeg(sport, { flags: TCP.ACK, seq: 2 }));
      return i;
    };
    // wlc: (active*256+inactive)/weight, ties to the first; weight 0 never.
    expect([open(43000), open(43001), open(43002), open(43003), open(43004), open(43005)]).toEqual([
      0, 1, 1, 0, 1, 1,
    ]);
    expect(h.connections().every((c) => c.state === 'ESTABLISHED')).toBe(true);
  });

  it.each(['lc', 'wlc', 'sed', 'nq'] as const)(
    'agrees with the kernel reference executor for %s on live counts',
    (formula) => {
      const h = harness();
      const plan: LeastConnectionsPlan = { kind: 'least-connections', formula, weights: [3, 1, 2] };
      h.apply(add(snapshot({ plan })));
      const reference = new PlanExecutor(plan);
      let seed = 99;
      const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
      for (let i = 0; i < 60; i++) {
        const servers = h.services()[0]!.servers;
        const want = reference.pick(
          { sourceAddress: CLIENT.ip, sourcePort: 49000 + i, destinationAddress: VIP, destinationPort: 80 },
          (k) => ({ active: servers[k]!.activeConns, inactive: servers[k]!.inactiveConns }),
        );
        const s = parseFrame(h.inject('wan', clientSeg(49000 + i, { flags: TCP.SYN }))[0]!.frame);
        const got = SERVERS.findIndex((x) => x.ip === s.ip!.dst);
        expect(got, `connection ${i}`).toBe(want);
        if (rand() < 0.6) {
          // Some connections complete the handshake (active), the others stay half-open (inactive).
          h.inject(
            'lan',
            tcpFrame(fromServer(got), {
              src: s.ip!.dst,
              dst: LADDR,
              sport: 8080,
              dport: s.tcp!.sport,
              flags: TCP.SYN | TCP.ACK,
            }),
          );
          h.inject('wan', clientSeg(49000 + i, { flags: TCP.ACK }));
        }
      }
    },
  );

  it('turns a refused connection into a passive-health failure (RST while SYN_RECV)', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const s = parseFrame(h.inject('wan', clientSeg(44000, { flags: TCP.SYN }), 0)[0]!.frame);
    const [rst] = h.inject('lan', serverSeg(0, s.tcp!.sport, { flags: TCP.RST | TCP.ACK, ack: 1001 }), 5);
    expect(parseFrame(rst!.frame).tcp).toMatchObject({
      sport: 80,
      dport: 44000,
      flags: TCP.RST | TCP.ACK,
      checksumOk: true,
    });
    expect(h.connections()[0]!.state).toBe('CLOSE');
    expect(h.signals()).toEqual([{ service: 'web', server: '10.2.0.11:8080', ok: false, reason: 'refused' }]);
    expect(h.expire(5 + 3000)).toBe(1); // CLOSE lasts 3 s
    expect(h.signals()).toEqual([]); // already signalled once
  });

  it('expires an unanswered SYN after the SYN_RECV timeout, as a passive-health failure', () => {
    const h = harness({ timeouts: { synRecv: 500 } });
    h.apply(add(snapshot()));
    h.inject('wan', clientSeg(45000, { flags: TCP.SYN }), 100);
    expect(h.expire(599)).toBe(0);
    expect(h.expire(600)).toBe(1);
    expect(h.signals()).toEqual([{ service: 'web', server: '10.2.0.11:8080', ok: false, reason: 'timeout' }]);
  });

  it('applies per-state timeouts: ESTABLISHED lives long, a client RST closes fast', () => {
    const h = harness({ timeouts: { established: 60_000, close: 1000 } });
    h.apply(add(snapshot()));
    const s = parseFrame(h.inject('wan', clientSeg(46000, { flags: TCP.SYN }), 0)[0]!.frame);
    h.inject('lan', serverSeg(0, s.tcp!.sport, { flags: TCP.SYN | TCP.ACK }), 0);
    h.inject('wan', clientSeg(46000, { flags: TCP.ACK }), 0);
    expect(h.expire(59_999)).toBe(0);
    h.inject('wan', clientSeg(46000, { flags: TCP.RST }), 59_999);
    expect(h.connections()[0]!.state).toBe('CLOSE');
    expect(h.expire(60_998)).toBe(0);
    expect(h.expire(60_999)).toBe(1);
  });

  it('answers a segment no connection holds with the RST a host without the socket sends, never a RST with one', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const rst = (out: { port: string; frame: Buffer }[]) => {
      expect(out.map((o) => o.port)).toHaveLength(1);
      const p = parseFrame(out[0]!.frame);
      expect(p.ip).toMatchObject({ ttl: 64, checksumOk: true });
      expect(p.tcp!.checksumOk).toBe(true);
      expect(p.payload.length).toBe(0);
      return { port: out[0]!.port, eth: p.eth, ip: p.ip, tcp: p.tcp! };
    };
    // With ACK: <SEQ=SEG.ACK><CTL=RST>, from the VIP back to the client.
    const a = rst(
      h.inject(
        'wan',
        clientSeg(47000, { flags: TCP.ACK | TCP.PSH, seq: 1000, ack: 777, data: Buffer.from('x') }),
      ),
    );
    expect(a.port).toBe('wan');
    expect(a.eth).toEqual({ src: WAN_MAC, dst: CLIENT.mac, type: 0x0800 });
    expect(a.ip).toMatchObject({ src: VIP, dst: CLIENT.ip });
    expect(a.tcp).toMatchObject({ sport: 80, dport: 47000, seq: 777, flags: TCP.RST });
    expect(
      rst(h.inject('wan', clientSeg(47001, { flags: TCP.SYN | TCP.ACK, seq: 1, ack: 5 }))).tcp,
    ).toMatchObject({
      seq: 5,
      flags: TCP.RST,
    });
    // Without ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, FIN counted.
    expect(
      rst(h.inject('wan', clientSeg(47002, { flags: TCP.FIN, seq: 2000, data: Buffer.alloc(10) }))).tcp,
    ).toMatchObject({ seq: 0, ack: 2011, flags: TCP.RST | TCP.ACK });
    // A server's segment to a local port nobody holds: the RST goes back from the local address.
    const s = rst(h.inject('lan', serverSeg(0, 3333, { flags: TCP.ACK, seq: 9, ack: 4242 })));
    expect(s.port).toBe('lan');
    expect(s.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip });
    expect(s.tcp).toMatchObject({ sport: 3333, dport: 8080, seq: 4242, flags: TCP.RST });
    // A RST is never answered.
    expect(h.inject('wan', clientSeg(47003, { flags: TCP.RST, seq: 5 }))).toEqual([]);
    expect(h.counters()).toMatchObject({ drop_no_conn: 5, rst_unknown_sent: 4, rst_unknown_limited: 0 });
    expect(h.connections()).toEqual([]);
  });

  it('answers strays at most tcp.resetUnknown times a second, and not at all with 0', () => {
    const h = harness({ tcp: { resetUnknown: 2 } });
    h.apply(add(snapshot()));
    const stray = (port: number, now: number) =>
      h.inject('wan', clientSeg(port, { flags: TCP.ACK, ack: 1 }), now).length;
    expect([stray(48000, 1000), stray(48001, 1500), stray(48002, 1999), stray(48003, 2000)]).toEqual([
      1, 1, 0, 1,
    ]);
    expect(h.counters()).toMatchObject({ drop_no_conn: 4, rst_unknown_sent: 3, rst_unknown_limited: 1 });
    const off = harness({ tcp: { resetUnknown: 0 } });
    off.apply(add(snapshot()));
    expect(off.inject('wan', clientSeg(48000, { flags: TCP.ACK, ack: 1 }))).toEqual([]);
    expect(off.counters()).toMatchObject({ drop_no_conn: 1, rst_unknown_sent: 0 });
  });

  it('bench() runs the same pipeline natively, frame copies and all', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const syn = h.inject('wan', clientSeg(48000, { flags: TCP.SYN }));
    expect(syn).toHaveLength(1);
    const ns = h.bench(
      [{ port: 'wan', frame: clientSeg(48000, { flags: TCP.ACK, data: Buffer.alloc(64) }) }],
      100,
    );
    expect(ns).toBeGreaterThan(0);
    expect(h.counters()).toMatchObject({ rx_packets: 101, fullnat_in: 101, conns_created: 1 });
  });
});
