import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import type { EmittedFrame, HarnessOptions } from '../harness.js';
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
  VIP,
  WAN_MAC,
} from './fixtures.js';
import { opt, parseFrame, TCP, tcpFrame, type ParsedFrame, type TcpFields } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

type Seg = Partial<TcpFields> & { flags: number };

function setup(extra: Partial<HarnessOptions> = {}, servers = 1) {
  const h = harness(extra);
  h.apply(
    add(
      snapshot({
        synproxy: true,
        servers: SERVERS.slice(0, servers).map((s) => ({ address: s.ip, port: 8080 })),
      }),
    ),
  );
  const client = (sport: number, f: Seg, now = 0) =>
    h.inject('wan', tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, ...f }), now);
  const server = (i: number, lport: number, f: Seg, now = 0) =>
    h.inject('lan', serverSeg(i, lport, { ...f }), now);
  return { h, client, server };
}

const only = (out: EmittedFrame[], port: string): ParsedFrame => {
  expect(out.map((o) => o.port)).toEqual([port]);
  return parseFrame(out[0]!.frame);
};

const CISN = 1_000_000;
const SISN = 7_000_000;

describe.skipIf(need.skip)(`SYNPROXY, packet by packet${need.note}`, () => {
  it('answers a SYN with a cookie and keeps no state, then opens the server on a valid ACK', () => {
    const { h, client, server } = setup();
    const synOpts = Buffer.concat([opt.mss(1460), opt.sackPermitted()]);
    const sa = only(client(40000, { flags: TCP.SYN, seq: CISN, options: synOpts }), 'wan');
    expect(sa.eth).toEqual({ src: WAN_MAC, dst: CLIENT.mac, type: 0x0800 });
    expect(sa.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, ttl: 63, checksumOk: true });
    expect(sa.tcp).toMatchObject({
      sport: 80,
      dport: 40000,
      ack: CISN + 1,
      flags: TCP.SYN | TCP.ACK,
      window: 0,
      checksumOk: true,
    });
    expect(sa.tcp!.opts).toEqual({ mss: 1452, sackPermitted: true });
    expect(h.connections()).toEqual([]);
    const cookie = sa.tcp!.seq;
    // A retransmitted SYN gets the same cookie, still without state.
    expect(only(client(40000, { flags: TCP.SYN, seq: CISN, options: synOpts }, 5), 'wan').tcp!.seq).toBe(
      cookie,
    );
    expect(h.connections()).toEqual([]);

    const syn = only(client(40000, { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1 }, 10), 'lan');
    expect(syn.eth).toEqual({ src: LAN_MAC, dst: SERVERS[0]!.mac, type: 0x0800 });
    expect(syn.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip, checksumOk: true });
    expect(syn.tcp).toMatchObject({ dport: 8080, seq: CISN, ack: 0, flags: TCP.SYN, checksumOk: true });
    expect(syn.tcp!.opts).toEqual({ mss: 1452, sackPermitted: true });
    expect(syn.payload.length).toBe(0);
    const lport = syn.tcp!.sport;
    expect(h.connections()).toEqual([
      expect.objectContaining({
        client: `${CLIENT.ip}:40000`,
        state: 'SYN_SENT',
        local: `${LADDR}:${lport}`,
      }),
    ]);

    // Step 3: the kept ACK completes the server's handshake, the SYN-ACK becomes the window update.
    const out = server(0, lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1, window: 29200 }, 20);
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    const ack = parseFrame(out[0]!.frame);
    expect(ack.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip, checksumOk: true });
    expect(ack.tcp).toMatchObject({ seq: CISN + 1, ack: SISN + 1, flags: TCP.ACK, checksumOk: true });
    const wu = parseFrame(out[1]!.frame);
    expect(wu.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
    expect(wu.tcp).toMatchObject({
      sport: 80,
      dport: 40000,
      seq: cookie + 1,
      ack: CISN + 1,
      flags: TCP.ACK,
      window: 29200,
      checksumOk: true,
    });
    expect(h.connections()[0]!.state).toBe('ESTABLISHED');
    expect(h.signals()).toEqual([
      { service: 'web', server: `${SERVERS[0]!.ip}:8080`, ok: true, reason: 'answered' },
    ]);

    // Data both ways in each side's own sequence space, SACK edges included.
    const req = Buffer.from('GET / HTTP/1.0\r\n\r\n');
    const up = only(
      client(40000, { flags: TCP.ACK | TCP.PSH, seq: CISN + 1, ack: cookie + 1, data: req }, 30),
      'lan',
    );
    expect(up.tcp).toMatchObject({ seq: CISN + 1, ack: SISN + 1, checksumOk: true });
    expect(up.payload.equals(req)).toBe(true);
    const body = Buffer.alloc(300, 0x61);
    const down = only(
      server(
        0,
        lport,
        { flags: TCP.ACK | TCP.PSH, seq: SISN + 1, ack: CISN + 1 + req.length, data: body },
        40,
      ),
      'wan',
    );
    expect(down.tcp).toMatchObject({ seq: cookie + 1, ack: CISN + 1 + req.length, checksumOk: true });
    const sacked = only(
      client(
        40000,
        {
          flags: TCP.ACK,
          seq: CISN + 1 + req.length,
          ack: cookie + 1,
          options: opt.sack([cookie + 101, cookie + 201], [cookie + 251, cookie + 301]),
        },
        50,
      ),
      'lan',
    );
    expect(sacked.tcp).toMatchObject({ ack: SISN + 1, checksumOk: true });
    expect(sacked.tcp!.opts.sack).toEqual([
      [SISN + 101, SISN + 201],
      [SISN + 251, SISN + 301],
    ]);
    const c = h.counters();
    expect(c).toMatchObject({ synproxy_syn_answered: 2, synproxy_ack_valid: 1, synproxy_ack_saved: 1 });
    expect(c.synproxy_bad_cookie).toBe(0);
  });

  it('drops ACKs whose cookie is wrong, made for another 4-tuple, or older than two secrets', () => {
    const { h, client } = setup({ synproxy: { cookieSecretRotate: 1000 } });
    const cookieOf = (sport: number, now: number) =>
      only(client(sport, { flags: TCP.SYN, seq: CISN }, now), 'wan').tcp!.seq;
    const c1 = cookieOf(40001, 0);
    expect(client(40001, { flags: TCP.ACK, seq: CISN + 1, ack: c1 + 2 }, 1)).toEqual([]);
    expect(client(40002, { flags: TCP.ACK, seq: CISN + 1, ack: c1 + 1 }, 1)).toEqual([]);
    expect(client(40001, { flags: TCP.ACK, seq: CISN + 2, ack: c1 + 1 }, 1)).toEqual([]);
    expect(h.counters().synproxy_bad_cookie).toBe(3);
    // One rotation later the cookie still holds; two rotations later its secret is gone.
    const c3 = cookieOf(40003, 100);
    const c4 = cookieOf(40004, 100);
    expect(only(client(40003, { flags: TCP.ACK, seq: CISN + 1, ack: c3 + 1 }, 1900), 'lan').tcp!.flags).toBe(
      TCP.SYN,
    );
    expect(client(40004, { flags: TCP.ACK, seq: CISN + 1, ack: c4 + 1 }, 2100)).toEqual([]);
    expect(h.counters()).toMatchObject({ synproxy_bad_cookie: 4, synproxy_ack_valid: 1 });
    expect(h.connections()).toHaveLength(1);
  });

  it('negotiates timestamps, SACK and window scale, and moves the server clock into the cookie one', () => {
    const { client, server } = setup({ synproxy: { synackOptions: { timestamp: true, wscale: 7 } } });
    const synOpts = Buffer.concat([opt.mss(1400), opt.sackPermitted(), opt.ts(111, 0), opt.wscale(8)]);
    const sa = only(client(40010, { flags: TCP.SYN, seq: CISN, options: synOpts }, 12_345), 'wan');
    expect(sa.tcp!.checksumOk).toBe(true);
    expect(sa.tcp!.opts).toMatchObject({ mss: 1452, sackPermitted: true, wscale: 7 });
    const tsval = sa.tcp!.opts.ts!.val;
    expect(sa.tcp!.opts.ts!.ecr).toBe(111);
    const cookie = sa.tcp!.seq;
    const syn = only(
      client(
        40010,
        { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1, window: 500, options: opt.ts(112, tsval) },
        12_400,
      ),
      'lan',
    );
    // The server hears the client's own options and clock.
    expect(syn.tcp!.opts).toEqual({ mss: 1400, sackPermitted: true, wscale: 8, ts: { val: 112, ecr: 0 } });
    expect(syn.tcp!.window).toBe(65535); // 500 << 8, capped: a SYN's window is never scaled
    const lport = syn.tcp!.sport;
    const out = server(
      0,
      lport,
      { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1, options: Buffer.concat([opt.ts(90_000, 112)]) },
      12_500,
    );
    const [ack, wu] = out.map((o) => parseFrame(o.frame));
    expect(wu!.tcp!.window).toBe(65535 >> 7); // the SYN-ACK's unscaled window, scaled as offered
    expect(ack!.tcp!.opts.ts).toEqual({ val: 112, ecr: 90_000 }); // the kept ACK's TSecr, moved to the server clock
    expect(wu!.tcp!.opts.ts).toEqual({ val: tsval, ecr: 112 });
    expect(wu!.tcp!.checksumOk && ack!.tcp!.checksumOk).toBe(true);
    const down = only(
      server(
        0,
        lport,
        { flags: TCP.ACK, seq: SISN + 1, ack: CISN + 1, options: opt.ts(90_010, 113) },
        12_600,
      ),
      'wan',
    );
    expect(down.tcp!.opts.ts).toEqual({ val: tsval + 10, ecr: 113 });
    const up = only(
      client(
        40010,
        { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1, options: opt.ts(114, tsval + 10) },
        12_700,
      ),
      'lan',
    );
    expect(up.tcp!.opts.ts).toEqual({ val: 114, ecr: 90_010 });
    expect(down.tcp!.checksumOk && up.tcp!.checksumOk).toBe(true);

    // Options the configuration does not offer stay off on both sides.
    const { client: c2 } = setup();
    const plain = only(c2(40011, { flags: TCP.SYN, seq: CISN, options: synOpts }), 'wan');
    expect(plain.tcp!.opts).toEqual({ mss: 1452, sackPermitted: true });
    const s2 = only(c2(40011, { flags: TCP.ACK, seq: CISN + 1, ack: plain.tcp!.seq + 1 }), 'lan');
    expect(s2.tcp!.opts).toEqual({ mss: 1400, sackPermitted: true });
    const bare = only(c2(40012, { flags: TCP.SYN, seq: CISN }), 'wan');
    expect(bare.tcp!.opts).toEqual({ mss: 1452 });
    const s3 = only(c2(40012, { flags: TCP.ACK, seq: CISN + 1, ack: bare.tcp!.seq + 1 }), 'lan');
    expect(s3.tcp!.opts).toEqual({ mss: 536 });
  });

  it('keeps retransmitted and later client packets until the server answers, within maxAckSaved', () => {
    const { h, client, server } = setup({ synproxy: { maxAckSaved: 3 } });
    const cookie = only(client(40020, { flags: TCP.SYN, seq: CISN }), 'wan').tcp!.seq;
    const ack = { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1 };
    const lport = only(client(40020, ack, 1), 'lan').tcp!.sport;
    expect(client(40020, ack, 2)).toEqual([]); // retransmitted ACK: kept
    expect(client(40020, { ...ack, flags: TCP.ACK | TCP.PSH, data: Buffer.from('hi') }, 3)).toEqual([]);
    expect(client(40020, ack, 4)).toEqual([]); // a fourth: over maxAckSaved, dropped
    expect(client(40020, { ...ack, ack: cookie + 5 }, 4)).toEqual([]); // not acknowledging the cookie
    expect(h.counters()).toMatchObject({
      synproxy_ack_saved: 3,
      synproxy_ack_saved_overflow: 1,
      synproxy_out_of_window: 1,
    });
    const out = server(0, lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 5);
    expect(out.map((o) => o.port)).toEqual(['lan', 'lan', 'lan', 'wan']);
    const replayed = out.slice(0, 3).map((o) => parseFrame(o.frame));
    expect(replayed.map((r) => [r.tcp!.seq, r.tcp!.ack, r.payload.toString(), r.tcp!.checksumOk])).toEqual([
      [CISN + 1, SISN + 1, '', true],
      [CISN + 1, SISN + 1, '', true],
      [CISN + 1, SISN + 1, 'hi', true],
    ]);
    // After the handshake a retransmitted ACK simply passes, translated.
    expect(only(client(40020, ack, 6), 'lan').tcp).toMatchObject({ seq: CISN + 1, ack: SISN + 1 });
  });

  it('moves the handshake to another server when the first refuses, and resets the client when none is left', () => {
    const { h, client, server } = setup({}, 2);
    const cookie = only(client(40030, { flags: TCP.SYN, seq: CISN }), 'wan').tcp!.seq;
    const syn = only(client(40030, { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1 }, 1), 'lan');
    expect(syn.ip!.dst).toBe(SERVERS[0]!.ip);
    const lport = syn.tcp!.sport;
    const retry = only(server(0, lport, { flags: TCP.RST | TCP.ACK, seq: 0, ack: CISN + 1 }, 2), 'lan');
    expect(retry.ip).toMatchObject({ src: LADDR, dst: SERVERS[1]!.ip, checksumOk: true });
    expect(retry.tcp).toMatchObject({ sport: lport, seq: CISN, flags: TCP.SYN, checksumOk: true });
    expect(h.signals()).toEqual([
      { service: 'web', server: `${SERVERS[0]!.ip}:8080`, ok: false, reason: 'refused' },
    ]);
    expect(h.connections()[0]).toMatchObject({ server: `${SERVERS[1]!.ip}:8080`, state: 'SYN_SENT' });
    // The refusing server's stray packets no longer match the connection: one draws a RST.
    const stray = only(server(0, lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 3), 'lan');
    expect(stray.ip).toMatchObject({ src: LADDR, dst: SERVERS[0]!.ip });
    expect(stray.tcp).toMatchObject({ sport: lport, seq: CISN + 1, flags: TCP.RST, checksumOk: true });
    const out = server(1, lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 }, 4);
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    expect(parseFrame(out[0]!.frame).ip!.dst).toBe(SERVERS[1]!.ip);
    expect(parseFrame(out[1]!.frame).tcp).toMatchObject({ seq: cookie + 1, flags: TCP.ACK });
    expect(h.counters()).toMatchObject({ synproxy_rs_refused: 1, synproxy_rs_retried: 1 });
    const servers = h.services()[0]!.servers;
    expect(servers.map((s) => [s.activeConns, s.inactiveConns])).toEqual([
      [0, 0],
      [1, 0],
    ]);

    // With retryOtherServer off, the client gets the RST in its own sequence space.
    const { h: h2, client: c2, server: s2 } = setup({ synproxy: { retryOtherServer: false } }, 2);
    const ck = only(c2(40031, { flags: TCP.SYN, seq: CISN }), 'wan').tcp!.seq;
    const lp = only(c2(40031, { flags: TCP.ACK, seq: CISN + 1, ack: ck + 1 }), 'lan').tcp!.sport;
    const rst = only(s2(0, lp, { flags: TCP.RST | TCP.ACK, seq: 0, ack: CISN + 1 }), 'wan');
    expect(rst.tcp).toMatchObject({ seq: ck + 1, ack: CISN + 1, flags: TCP.RST | TCP.ACK, checksumOk: true });
    expect(h2.connections()[0]!.state).toBe('CLOSE');
  });

  it('retransmits the SYN to a silent server rsSynMaxRetry times, then tries another server', () => {
    const { h, client } = setup({ synproxy: { rsSynMaxRetry: 2 } }, 2);
    const cookie = only(client(40040, { flags: TCP.SYN, seq: CISN }), 'wan').tcp!.seq;
    const [first] = client(40040, { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1 });
    const sent: EmittedFrame[] = [];
    for (const t of [3100, 6200]) h.expire(t, sent);
    expect(sent.map((s) => [s.port, parseFrame(s.frame).ip!.dst, parseFrame(s.frame).tcp!.flags])).toEqual([
      ['lan', SERVERS[0]!.ip, TCP.SYN],
      ['lan', SERVERS[0]!.ip, TCP.SYN],
    ]);
    expect(parseFrame(sent[0]!.frame).tcp!.checksumOk).toBe(true);
    expect(sent.every((s) => s.frame.equals(first!.frame))).toBe(true); // the very SYN, again
    sent.length = 0;
    expect(h.expire(9300, sent)).toBe(0);
    expect(sent.map((s) => parseFrame(s.frame).ip!.dst)).toEqual([SERVERS[1]!.ip]);
    expect(h.signals()).toEqual([
      { service: 'web', server: `${SERVERS[0]!.ip}:8080`, ok: false, reason: 'timeout' },
    ]);
    // The second server is silent too: after its retransmissions the connection ends, no third server.
    sent.length = 0;
    for (const t of [12_400, 15_500]) h.expire(t, sent);
    expect(sent).toHaveLength(2);
    expect(h.expire(18_600, sent)).toBe(1);
    expect(h.connections()).toEqual([]);
    expect(h.signals()).toEqual([
      { service: 'web', server: `${SERVERS[1]!.ip}:8080`, ok: false, reason: 'timeout' },
    ]);
    expect(h.counters()).toMatchObject({
      synproxy_rs_syn_retransmits: 4,
      synproxy_rs_timeout: 2,
      synproxy_rs_retried: 1,
    });
  });

  it('drops an ACK storm from the server beyond ackStormThresh, and reuses a closed 4-tuple', () => {
    const { h, client, server } = setup({ synproxy: { ackStormThresh: 4 } });
    const cookie = only(client(40050, { flags: TCP.SYN, seq: CISN }), 'wan').tcp!.seq;
    const lport = only(client(40050, { flags: TCP.ACK, seq: CISN + 1, ack: cookie + 1 }), 'lan').tcp!.sport;
    server(0, lport, { flags: TCP.SYN | TCP.ACK, seq: SISN, ack: CISN + 1 });
    let passed = 0;
    for (let i = 0; i < 10; i++)
      passed += server(0, lport, { flags: TCP.ACK, seq: SISN + 1, ack: CISN + 1 }, i).length;
    expect(passed).toBe(5); // the first, then 4 duplicates
    expect(h.counters().synproxy_ack_storm).toBe(5);
    // Data resets the count.
    expect(
      server(0, lport, { flags: TCP.ACK, seq: SISN + 1, ack: CISN + 1, data: Buffer.from('x') }),
    ).toHaveLength(1);
    expect(server(0, lport, { flags: TCP.ACK, seq: SISN + 2, ack: CISN + 1 })).toHaveLength(1);

    // A SYN inside the live connection is dropped; after an RST (CLOSE) the 4-tuple starts over.
    expect(client(40050, { flags: TCP.SYN, seq: CISN + 50 })).toEqual([]);
    expect(h.counters().synproxy_syn_dropped).toBe(1);
    only(client(40050, { flags: TCP.RST, seq: CISN + 1, ack: cookie + 1 }), 'lan');
    expect(h.connections()[0]!.state).toBe('CLOSE');
    const again = only(client(40050, { flags: TCP.SYN, seq: CISN + 99 }), 'wan');
    expect(again.tcp!.flags).toBe(TCP.SYN | TCP.ACK);
    expect(h.connections()).toEqual([]);
    expect(h.counters().synproxy_conn_reused).toBe(1);
  });
});
