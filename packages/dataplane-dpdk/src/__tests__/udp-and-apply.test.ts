import { DataplaneError } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import {
  add,
  CLIENT,
  fromClient,
  fromServer,
  harness,
  LADDR,
  remove,
  SERVERS,
  snapshot,
  update,
  VIP,
} from './fixtures.js';
import { parseFrame, TCP, tcpFrame, udpFrame } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`FULLNAT UDP${need.note}`, () => {
  it('rewrites datagrams both ways, with and without a UDP checksum', () => {
    const h = harness();
    h.apply(add(snapshot({ protocol: 'udp', port: 53, servers: [{ address: SERVERS[1]!.ip, port: 5353 }] })));
    const query = Buffer.from('question?');
    const [out] = h.inject(
      'wan',
      udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33000, dport: 53, data: query }),
    );
    const o = parseFrame(out!.frame);
    expect(o.ip).toMatchObject({ src: LADDR, dst: SERVERS[1]!.ip, checksumOk: true });
    expect(o.udp).toMatchObject({ dport: 5353, checksumOk: true });
    expect(o.udp!.checksum).not.toBe(0);
    expect(o.payload.equals(query)).toBe(true);
    expect(h.connections()[0]).toMatchObject({ protocol: 'udp', state: 'ONEWAY' });

    const answer = Buffer.from('answer!');
    const [back] = h.inject(
      'lan',
      udpFrame(fromServer(1), {
        src: SERVERS[1]!.ip,
        dst: LADDR,
        sport: 5353,
        dport: o.udp!.sport,
        data: answer,
        noChecksum: true,
      }),
    );
    const b = parseFrame(back!.frame);
    expect(b.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
    expect(b.udp).toMatchObject({ sport: 53, dport: 33000, checksum: 0 }); // "no checksum" stays so
    expect(h.connections()[0]!.state).toBe('NORMAL');
    expect(h.signals()).toEqual([
      { service: 'web', server: `${SERVERS[1]!.ip}:5353`, ok: true, reason: 'answered' },
    ]);
  });

  it('expires a ONEWAY session as a passive-health failure, a NORMAL one quietly', () => {
    const h = harness({ timeouts: { udpOneway: 1000, udp: 5000 } });
    h.apply(add(snapshot({ protocol: 'udp', port: 53 })));
    h.inject('wan', udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 33001, dport: 53 }), 0);
    expect(h.expire(999)).toBe(0);
    expect(h.expire(1000)).toBe(1);
    expect(h.signals()).toEqual([
      { service: 'web', server: '10.2.0.11:8080', ok: false, reason: 'oneway-expired' },
    ]);
  });
});

describe.skipIf(need.skip)(`snapshots applied to the pipeline${need.note}`, () => {
  const synFrom = (sport: number) =>
    tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, flags: TCP.SYN });

  it('keeps established connections on their server when the plan drops it', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const first = parseFrame(h.inject('wan', synFrom(40000))[0]!.frame);
    expect(first.ip!.dst).toBe(SERVERS[0]!.ip);
    h.apply(update(snapshot({ plan: { kind: 'sequence', sequence: [2] }, version: 2 })));
    expect(parseFrame(h.inject('wan', synFrom(40000))[0]!.frame).ip!.dst).toBe(SERVERS[0]!.ip);
    expect(parseFrame(h.inject('wan', synFrom(40001))[0]!.frame).ip!.dst).toBe(SERVERS[2]!.ip);
  });

  it('ends the connections of a server retired with expire, keeps those of one retired with drain', () => {
    const h = harness();
    h.apply(add(snapshot({ plan: { kind: 'sequence', sequence: [0, 1] } })));
    h.inject('wan', synFrom(40000));
    h.inject('wan', synFrom(40001));
    h.apply(
      update(
        snapshot({
          plan: { kind: 'sequence', sequence: [2] },
          retired: [
            { server: '10.2.0.11:8080', action: 'expire' },
            { server: '10.2.0.12:8080', action: 'drain' },
          ],
        }),
      ),
    );
    expect(h.connections().map((c) => c.server)).toEqual(['10.2.0.12:8080']);
    expect(h.counters().conns_retired).toBe(1);
  });

  it('stops serving a removed service, and answers ARP no more for its VIP', () => {
    const h = harness();
    h.apply(add(snapshot()));
    h.apply(remove('web'));
    expect(h.inject('wan', synFrom(40000))).toEqual([]);
    expect(h.counters().drop_not_ours).toBe(1);
  });

  it('lets the connections of a removed service, or of a dropped local address, finish', () => {
    const h = harness();
    h.apply(add(snapshot({ localAddresses: ['10.2.0.201'] })));
    const s = parseFrame(h.inject('wan', synFrom(40000))[0]!.frame);
    expect(s.ip!.src).toBe('10.2.0.201');
    h.apply(update(snapshot({ localAddresses: [LADDR], version: 2 })));
    const reply = () =>
      h.inject(
        'lan',
        tcpFrame(fromServer(0), {
          src: s.ip!.dst,
          dst: '10.2.0.201',
          sport: 8080,
          dport: s.tcp!.sport,
          flags: TCP.SYN | TCP.ACK,
        }),
      );
    expect(parseFrame(reply()[0]!.frame).ip).toMatchObject({ src: VIP, dst: CLIENT.ip, checksumOk: true });
    h.apply(remove('web'));
    expect(reply()).toHaveLength(1);
    expect(
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags: TCP.ACK }),
      ),
    ).toHaveLength(1);
    expect(h.inject('wan', synFrom(40001))).toEqual([]); // but nothing new
    expect(h.counters().drop_not_ours).toBe(1);
  });

  it('refuses a change it cannot serve, and keeps serving what it served', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const bad = [
      snapshot({ name: 'v6', listen: '2001:db8::1' }),
      snapshot({ name: 'nolocal', listen: '10.1.0.101', localAddresses: [] }),
      snapshot({ name: 'badplan', listen: '10.1.0.102', plan: { kind: 'sequence', sequence: [7] } }),
      snapshot({ name: 'dup', listen: VIP }),
    ];
    for (const s of bad) {
      const change = {
        added: [snapshot({ name: 'other', listen: '10.1.0.103' }), s],
        updated: [],
        removed: [],
      };
      expect(() => h.apply(change)).toThrow(DataplaneError);
    }
    expect(() => h.apply(remove('nope'))).toThrow(/not served/);
    expect(() => h.apply(add(snapshot({ name: 'v6', listen: '2001:db8::1' })))).toThrow(
      expect.objectContaining({ code: 'FULCRUM_DATAPLANE_UNSUPPORTED' }),
    );
    expect(h.inject('wan', synFrom(40000))).toHaveLength(1);
    // "other" was in every refused change and must not have been added.
    expect(
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: '10.1.0.103', sport: 1, dport: 80, flags: TCP.SYN }),
      ),
    ).toEqual([]);
  });
});
