import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import {
  add,
  clientSeg,
  CLIENT,
  fromClient,
  fromServer,
  harness,
  LADDR,
  LAN_MAC,
  SERVERS,
  serverSeg,
  snapshot,
  update,
  VIP,
} from './fixtures.js';
import { arpFrame, parseFrame, TCP, udpFrame } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

// The SYN a worker forwards to the server: its source port is the connection's local port.
function openOn(h: ReturnType<typeof harness>, worker: number, sport: number, now = 0) {
  const out = h.inject('wan', clientSeg(sport, { flags: TCP.SYN, seq: 1000 }), now, worker);
  expect(out).toHaveLength(1);
  expect(out[0]!.worker).toBe(worker);
  const p = parseFrame(out[0]!.frame);
  return { lport: p.tcp!.sport, server: SERVERS.findIndex((s) => s.ip === p.ip!.dst) };
}

describe.skipIf(need.skip)(
  `worker lcores: local-port slices and redirect, packet by packet${need.note}`,
  () => {
    it('gives each worker the local ports p % workers == worker', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      for (let i = 0; i < 6; i++) {
        const worker = i % 2;
        expect(openOn(h, worker, 40000 + i).lport % 2).toBe(worker);
      }
      expect(h.workerCounters().map((c) => c.connections)).toEqual([3, 3]);
    });

    it('splits maxConnections between the workers', () => {
      const h = harness({ workers: 2, maxConnections: 2 });
      h.apply(add(snapshot()));
      openOn(h, 0, 40000);
      openOn(h, 1, 40001);
      expect(h.inject('wan', clientSeg(40002, { flags: TCP.SYN }), 0, 0)).toEqual([]);
      expect(h.workerCounters().map((c) => c.drop_conn_table_full)).toEqual([1, 0]);
    });

    it('hands a reply that lands on the wrong worker to the owner, which rewrites and sends it', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const { lport, server } = openOn(h, 1, 40000);
      expect(lport % 2).toBe(1);
      // The SYN-ACK arrives on worker 0's queue (the kernel or NIC picked it).
      const out = h.inject(
        'lan',
        serverSeg(server, lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }),
        1,
        0,
      );
      expect(out).toHaveLength(1);
      expect(out[0]).toMatchObject({ port: 'wan', worker: 1 });
      const p = parseFrame(out[0]!.frame);
      expect(p.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
      expect(p.tcp).toMatchObject({ sport: 80, dport: 40000, flags: TCP.SYN | TCP.ACK, checksumOk: true });
      const [w0, w1] = h.workerCounters();
      expect(w0).toMatchObject({ redirected: 1, fullnat_out: 0, drop_no_conn: 0, drop_not_ours: 0 });
      expect(w1).toMatchObject({ redirected: 0, fullnat_in: 1, fullnat_out: 1 });
      // The same reply arriving on its owner's queue is not redirected.
      const again = h.inject('lan', serverSeg(server, lport, { flags: TCP.ACK, seq: 5001, ack: 1001 }), 2, 1);
      expect(again.map((f) => f.worker)).toEqual([1]);
      expect(h.workerCounters()[1]!.redirected).toBe(0);
      expect(h.counters().redirected).toBe(1);
      expect(h.connections()).toEqual([
        expect.objectContaining({ worker: 1, local: `${LADDR}:${lport}`, state: 'ESTABLISHED' }),
      ]);
    });

    it('redirects UDP replies too, and keeps client flows where they arrive', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot({ protocol: 'udp', port: 53 })));
      const [fwd] = h.inject(
        'wan',
        udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33000, dport: 53, data: Buffer.from('q') }),
        0,
        0,
      );
      expect(fwd!.worker).toBe(0);
      const lport = parseFrame(fwd!.frame).udp!.sport;
      expect(lport % 2).toBe(0);
      const [back] = h.inject(
        'lan',
        udpFrame(fromServer(0), {
          src: SERVERS[0]!.ip,
          dst: LADDR,
          sport: 8080,
          dport: lport,
          data: Buffer.from('a'),
        }),
        1,
        1,
      );
      expect(back).toMatchObject({ port: 'wan', worker: 0 });
      expect(parseFrame(back!.frame).udp).toMatchObject({ sport: 53, dport: 33000, checksumOk: true });
      expect(h.connections()).toEqual([expect.objectContaining({ worker: 0, state: 'NORMAL' })]);
      expect(h.workerCounters().map((c) => c.redirected)).toEqual([0, 1]);
    });

    it('counts a full redirect ring as drop_redirect_ring_full and forwards what fitted', () => {
      const h = harness({ workers: 2, redirectRing: 4 });
      h.apply(add(snapshot()));
      const { lport, server } = openOn(h, 1, 40000);
      h.inject('lan', serverSeg(server, lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }), 1, 1);
      h.inject('wan', clientSeg(40000, { flags: TCP.ACK, seq: 1001, ack: 5001 }), 1, 1);
      // Ten segments from the server in one burst on worker 0: its owner drains only after.
      const burst = Array.from({ length: 10 }, (_, i) => ({
        port: 'lan',
        frame: serverSeg(server, lport, {
          flags: TCP.ACK | TCP.PSH,
          seq: 5001 + i,
          ack: 1001,
          data: Buffer.from('x'),
        }),
      }));
      const out = h.burst(0, burst, 2);
      expect(out).toHaveLength(4);
      expect(out.every((f) => f.worker === 1 && f.port === 'wan')).toBe(true);
      expect(out.map((f) => parseFrame(f.frame).tcp!.seq)).toEqual([5001, 5002, 5003, 5004]);
      expect(h.workerCounters()[0]).toMatchObject({ redirected: 4, drop_redirect_ring_full: 6 });
      expect(h.counters()).toMatchObject({ redirected: 4, drop_redirect_ring_full: 6 });
      // The ring drained, the next burst fits again.
      expect(h.burst(0, burst.slice(0, 3), 3)).toHaveLength(3);
      expect(h.workerCounters()[0]!.drop_redirect_ring_full).toBe(6);
    });

    it('still redirects replies to a local address an update removed, until its connections end', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const { lport, server } = openOn(h, 1, 40000);
      h.apply(update(snapshot({ localAddresses: ['10.2.0.201'], version: 2 })));
      const out = h.inject(
        'lan',
        serverSeg(server, lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }),
        1,
        0,
      );
      expect(out.map((f) => [f.port, f.worker])).toEqual([['wan', 1]]);
    });

    it('applies a change on every worker and keeps established connections on their server', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const first = [openOn(h, 0, 40000), openOn(h, 1, 40001)];
      // Each worker has its own sequence cursor: both start with server 0.
      expect(first.map((c) => c.server)).toEqual([0, 0]);
      h.apply(update(snapshot({ plan: { kind: 'sequence', sequence: [2] }, version: 2 })));
      expect([openOn(h, 0, 40002).server, openOn(h, 1, 40003).server]).toEqual([2, 2]);
      // The connections opened before the change still reach server 0, through their owner.
      const out = h.inject(
        'lan',
        serverSeg(0, first[0]!.lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }),
        1,
        1,
      );
      expect(out.map((f) => [f.port, f.worker])).toEqual([['wan', 0]]);
    });

    it('sums services() over the workers and lists both workers connections', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      openOn(h, 0, 40000);
      openOn(h, 1, 40001);
      openOn(h, 1, 40002);
      const [svc] = h.services();
      expect(svc!.liveConns).toBe(3);
      // rr per worker: worker 0 sent one to server 0, worker 1 one to server 0 and one to server 1.
      expect(svc!.servers.map((s) => [s.server, s.conns, s.inactiveConns])).toEqual([
        ['10.2.0.11:8080', 2, 2],
        ['10.2.0.12:8080', 1, 1],
        ['10.2.0.13:8080', 0, 0],
      ]);
      expect(
        h
          .connections()
          .map((c) => [c.worker, c.client])
          .sort(),
      ).toEqual([
        [0, '10.1.0.2:40000'],
        [1, '10.1.0.2:40001'],
        [1, '10.1.0.2:40002'],
      ]);
    });

    it("least-connections counts are shared: each worker picks from every worker's connections, as IPVS", () => {
      const h = harness({ workers: 2 });
      h.apply(
        add(
          snapshot({
            servers: SERVERS.slice(0, 2).map((s) => ({ address: s.ip, port: 8080 })),
            plan: { kind: 'least-connections', formula: 'lc', weights: [1, 1] },
          }),
        ),
      );
      // Worker 1 opens one to server 0 (a tie: the first). Worker 0, with none of its own,
      // sees it and picks server 1 (per-lcore counts, as DPVS keeps them, would pick server 0).
      expect(openOn(h, 1, 40000, 0).server).toBe(0);
      expect(openOn(h, 0, 40001, 20_000).server).toBe(1);
      expect(openOn(h, 0, 40002, 20_000).server).toBe(0);
      // Worker 1's connection expires (SYN_RECV, 30 s): the shared count of server 0 drops
      // with it, so it is a tie again (1, 1) and worker 1 takes server 0; had the count
      // stayed (2, 1), it would take server 1.
      expect(h.expire(35_000)).toBe(1);
      expect(openOn(h, 1, 40003, 35_000).server).toBe(0);
      // Each worker's own statistics still add up to what ipvsadm would show.
      const [svc] = h.services();
      expect(svc!.servers.map((s) => s.inactiveConns + s.activeConns)).toEqual([2, 1]);
    });

    it('teaches every worker a neighbour that one of them learned from ARP', () => {
      const h = harness({ workers: 2, neighbors: [{ port: 'wan', address: CLIENT.ip, mac: CLIENT.mac }] });
      h.apply(add(snapshot()));
      const syn = clientSeg(40000, { flags: TCP.SYN });
      const [req] = h.inject('wan', syn, 0, 1);
      expect(parseFrame(req!.frame).arp).toMatchObject({ op: 1, tpa: SERVERS[0]!.ip });
      // The server's ARP reply lands on worker 0's queue; worker 1 learns it from worker 0.
      h.inject('lan', arpFrame(2, SERVERS[0]!.mac, SERVERS[0]!.ip, LAN_MAC, '10.2.0.1'), 1, 0);
      const [fwd] = h.inject('wan', syn, 2, 1);
      expect(fwd).toMatchObject({ port: 'lan', worker: 1 });
      expect(parseFrame(fwd!.frame).eth.dst).toBe(SERVERS[0]!.mac);
      expect(h.workerCounters().map((c) => c.arp_learned)).toEqual([1, 0]);
    });

    it('sends gratuitous ARP once, from one worker', () => {
      const one = harness().apply(add(snapshot()));
      const two = harness({ workers: 2 }).apply(add(snapshot()));
      expect(two.map((f) => f.frame.toString('hex'))).toEqual(one.map((f) => f.frame.toString('hex')));
      expect(two.every((f) => f.worker === 0)).toBe(true);
    });

    it('benchReceived() runs the owner check and the redirect natively, as the EAL loop does', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const { lport, server } = openOn(h, 1, 40000);
      h.inject('lan', serverSeg(server, lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }), 1, 1);
      const reply = serverSeg(server, lport, {
        flags: TCP.ACK,
        seq: 5001,
        ack: 1001,
        data: Buffer.alloc(64),
      });
      expect(h.benchReceived([{ port: 'lan', frame: reply }], 40, 0)).toBeGreaterThan(0);
      const [w0, w1] = h.workerCounters();
      expect(w0).toMatchObject({ redirected: 40, rx_packets: 0 });
      expect(w1).toMatchObject({ fullnat_out: 41, drop_no_conn: 0 });
      // Across two threads: enough frames to wrap the pool of in-flight frames several
      // times; every one reaches the owner and is processed once, none is dropped.
      const frames = Array.from({ length: 32 }, () => ({ port: 'lan', frame: reply }));
      expect(h.benchReceived(frames, 200, 0, 0, true)).toBeGreaterThan(0);
      const [a0, a1] = h.workerCounters();
      expect(a0).toMatchObject({ redirected: 40 + 6400, rx_packets: 0, drop_redirect_ring_full: 0 });
      expect(a1).toMatchObject({ fullnat_out: 41 + 6400, drop_no_conn: 0 });
    });

    it('passes a client segment that lands on a worker without its connection round to the one that has it', () => {
      // af_packet's fanout rolls a flow over to another socket when its ring is full (and an
      // RSS table can be reprogrammed): the client's next segment reaches the other worker.
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const { lport, server } = openOn(h, 0, 40000);
      h.inject('lan', serverSeg(server, lport, { flags: TCP.SYN | TCP.ACK, seq: 5000, ack: 1001 }), 1, 0);
      const out = h.inject('wan', clientSeg(40000, { flags: TCP.ACK, seq: 1001, ack: 5001 }), 2, 1);
      expect(out.map((f) => [f.port, f.worker])).toEqual([['lan', 0]]);
      expect(parseFrame(out[0]!.frame).tcp).toMatchObject({ sport: lport, dport: 8080, checksumOk: true });
      expect(h.connections()).toEqual([expect.objectContaining({ worker: 0, state: 'ESTABLISHED' })]);
      const [w0, w1] = h.workerCounters();
      expect(w1).toMatchObject({ miss_passed: 1, drop_no_conn: 0, rx_packets: 0 }); // received where handled
      expect(w0).toMatchObject({ miss_passed: 0, fullnat_in: 2 });
    });

    it('a segment no worker has a connection for goes round once and is counted once', () => {
      const h = harness({ workers: 3 });
      h.apply(add(snapshot()));
      // Where the round ends, the RST a host without the connection sends goes back.
      const out = h.inject('wan', clientSeg(41000, { flags: TCP.ACK, seq: 1, ack: 77 }), 0, 1);
      expect(out.map((o) => [o.port, o.worker])).toEqual([['wan', 0]]);
      expect(parseFrame(out[0]!.frame).tcp).toMatchObject({ dport: 41000, seq: 77, flags: TCP.RST });
      const counters = h.workerCounters();
      expect(counters.map((c) => c.miss_passed)).toEqual([0, 1, 1]); // 1 passes to 2, 2 to 0; 0's next is 1
      expect(counters.map((c) => c.drop_no_conn)).toEqual([1, 0, 0]);
      expect(counters.map((c) => c.rst_unknown_sent)).toEqual([1, 0, 0]);
      expect(h.counters()).toMatchObject({ drop_no_conn: 1, rx_packets: 1 });
    });

    it('passes at most kMissPerMs missed segments per worker per millisecond (an ACK flood is not multiplied)', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot()));
      const flood = Array.from({ length: 300 }, (_, i) => ({
        port: 'wan',
        frame: clientSeg(20000 + i, { flags: TCP.ACK, seq: 1, ack: 1 }),
      }));
      h.burst(0, flood, 5);
      const [w0, w1] = h.workerCounters();
      expect(w0).toMatchObject({ miss_passed: 256, miss_pass_limited: 44, drop_no_conn: 44 });
      expect(w1).toMatchObject({ miss_passed: 0, drop_no_conn: 256 });
      // A millisecond later the budget is back.
      h.inject('wan', clientSeg(19000, { flags: TCP.ACK, seq: 1, ack: 1 }), 6, 0);
      expect(h.workerCounters()[0]!.miss_passed).toBe(257);
    });

    it('SYNPROXY: a cookie ACK that lands on another worker than its SYN finds the worker whose secret made it', () => {
      const h = harness({ workers: 2 });
      h.apply(add(snapshot({ synproxy: true })));
      const [sa] = h.inject('wan', clientSeg(40000, { flags: TCP.SYN, seq: 1000 }), 0, 0);
      expect(sa!.worker).toBe(0);
      const cookie = parseFrame(sa!.frame).tcp!.seq;
      const out = h.inject('wan', clientSeg(40000, { flags: TCP.ACK, seq: 1001, ack: cookie + 1 }), 1, 1);
      expect(out.map((f) => [f.port, f.worker])).toEqual([['lan', 0]]);
      expect(parseFrame(out[0]!.frame).tcp!.flags).toBe(TCP.SYN);
      const [w0, w1] = h.workerCounters();
      expect(w1).toMatchObject({ miss_passed: 1, synproxy_bad_cookie: 0 });
      expect(w0).toMatchObject({ synproxy_ack_valid: 1, synproxy_bad_cookie: 0 });
    });

    it('refuses a worker that does not exist', () => {
      const h = harness({ workers: 2 });
      expect(() => h.inject('wan', clientSeg(40000, { flags: TCP.SYN }), 0, 2)).toThrow(RangeError);
    });
  },
);

describe.skipIf(need.skip)(`connection events${need.note}`, () => {
  it('records opened and closed connections with their duration, on whichever worker owns them', () => {
    const h = harness({ workers: 2, connectionEvents: true, timeouts: { close: 500 } });
    h.apply(add(snapshot()));
    const { lport, server } = openOn(h, 1, 40000);
    expect(h.connectionEvents()).toEqual([
      { opened: true, service: 'web', server: '10.2.0.11:8080', client: '10.1.0.2:40000', durationMs: 0 },
    ]);
    // The server refuses (its RST lands on worker 0 and is redirected); CLOSE then expires.
    h.inject('lan', serverSeg(server, lport, { flags: TCP.RST | TCP.ACK, seq: 0, ack: 1001 }), 1000, 0);
    // The refusal is a failure (connection:failed), recorded by the owner.
    expect(h.connectionEvents()).toEqual([
      {
        opened: false,
        failed: true,
        reason: 'refused',
        retried: false,
        service: 'web',
        server: '10.2.0.11:8080',
        client: '10.1.0.2:40000',
        durationMs: 0,
      },
    ]);
    expect(h.expire(1600)).toBe(1);
    expect(h.connectionEvents()).toEqual([
      { opened: false, service: 'web', server: '10.2.0.11:8080', client: '10.1.0.2:40000', durationMs: 1600 },
    ]);
  });

  it('records none unless asked, and counts what exceeds the cap instead of growing', () => {
    const off = harness({ workers: 2 });
    off.apply(add(snapshot()));
    openOn(off, 0, 40000);
    expect(off.connectionEvents()).toEqual([]);
    const capped = harness({ connectionEvents: true, connectionEventsMax: 2 });
    capped.apply(add(snapshot()));
    for (const sport of [40000, 40001, 40002]) openOn(capped, 0, sport);
    expect(capped.connectionEvents().map((e) => e.client)).toEqual(['10.1.0.2:40000', '10.1.0.2:40001']);
    expect(capped.counters().conn_events_dropped).toBe(1);
    openOn(capped, 0, 40003);
    expect(capped.connectionEvents()).toHaveLength(1); // room again after the read
  });
});
