import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, harness, snapshot, VIP } from './fixtures.js';
import { ether, ipv4, parseFrame, TCP, tcpFrame, tcpSegment } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

const syn = (sport: number, src = CLIENT.ip) =>
  tcpFrame(fromClient, { src, dst: VIP, sport, dport: 80, flags: TCP.SYN });

describe.skipIf(need.skip)(`malformed and unwanted packets are counted, never a crash${need.note}`, () => {
  it.each([
    ['an Ethernet header cut short', (f: Buffer) => f.subarray(0, 10), 'drop_truncated'],
    ['an IPv4 header cut short', (f: Buffer) => f.subarray(0, 14 + 12), 'drop_truncated'],
    ['a TCP header cut short', (f: Buffer) => f.subarray(0, 14 + 20 + 10), 'drop_truncated'],
    ['a total length beyond the frame', (f: Buffer) => f.subarray(0, f.length - 4), 'drop_truncated'],
    [
      'an IHL below 5',
      (f: Buffer) => {
        f[14] = 0x44;
        return f;
      },
      'drop_bad_ip_header',
    ],
    [
      'IP version 6 in an IPv4 ethertype',
      (f: Buffer) => {
        f[14] = 0x65;
        return f;
      },
      'drop_bad_ip_header',
    ],
    [
      'a bad IP header checksum',
      (f: Buffer) => {
        f[24]! ^= 0x10;
        return f;
      },
      'drop_bad_ip_checksum',
    ],
    [
      'a bad TCP checksum',
      (f: Buffer) => {
        f[14 + 20 + 16]! ^= 0x01;
        return f;
      },
      'drop_bad_l4_checksum',
    ],
    [
      'a TCP data offset beyond the segment',
      (f: Buffer) => {
        f[14 + 20 + 12] = 0xf0;
        return f;
      },
      'drop_truncated',
    ],
    [
      'an unknown ethertype (IPv6)',
      (f: Buffer) => {
        f.writeUInt16BE(0x86dd, 12);
        return f;
      },
      'drop_unknown_ethertype',
    ],
  ])('%s', (_what, mangle, counter) => {
    const h = harness();
    h.apply(add(snapshot()));
    expect(h.inject('wan', mangle(Buffer.from(syn(40000))))).toEqual([]);
    expect(h.counters()[counter]).toBe(1);
    expect(h.connections()).toEqual([]);
  });

  it('forwards a segment with IP options and TCP options, checksums intact', () => {
    const h = harness();
    h.apply(add(snapshot()));
    // TCP header with an MSS option (data offset 6), then an IPv4 header with a NOP/EOL option word (IHL 6).
    const seg = tcpSegment({ src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags: TCP.SYN });
    const withMss = Buffer.concat([seg.subarray(0, 20), Buffer.from([2, 4, 0x05, 0xb4])]);
    withMss[12] = 6 << 4;
    withMss.writeUInt16BE(0, 16);
    const plain = ipv4({ src: CLIENT.ip, dst: VIP, proto: 6 }, withMss);
    let sum = 0; // the TCP checksum over the pseudo-header and the segment with its option
    const pseudo = Buffer.concat([plain.subarray(12, 20), Buffer.from([0, 6, 0, withMss.length])]);
    for (const b of [pseudo, withMss]) for (let i = 0; i < b.length; i += 2) sum += b.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    withMss.writeUInt16BE(~sum & 0xffff, 16);
    const ip = Buffer.concat([plain.subarray(0, 20), Buffer.from([1, 1, 1, 0]), withMss]);
    ip[0] = 0x46;
    ip.writeUInt16BE(ip.length, 2);
    ip.writeUInt16BE(0, 10);
    let hs = 0;
    for (let i = 0; i < 24; i += 2) hs += ip.readUInt16BE(i);
    while (hs > 0xffff) hs = (hs & 0xffff) + (hs >>> 16);
    ip.writeUInt16BE(~hs & 0xffff, 10);
    const [out] = h.inject('wan', ether(fromClient, 0x0800, ip));
    expect(out).toBeDefined();
    const f = out!.frame;
    expect(f[14]).toBe(0x46);
    expect([...f.subarray(34, 38)]).toEqual([1, 1, 1, 0]); // options kept
    const o = parseFrame(f);
    expect(o.ip).toMatchObject({ src: '10.2.0.200', checksumOk: true });
    expect(o.tcp).toMatchObject({ dport: 8080, flags: TCP.SYN, checksumOk: true });
    expect([...f.subarray(38 + 20, 38 + 24)]).toEqual([2, 4, 0x05, 0xb4]); // MSS untouched
  });

  it('drops fragments (no reassembly yet) and unknown protocols to a VIP', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const seg = tcpSegment({ src: CLIENT.ip, dst: VIP, sport: 1, dport: 80, flags: TCP.SYN });
    expect(
      h.inject(
        'wan',
        ether(fromClient, 0x0800, ipv4({ src: CLIENT.ip, dst: VIP, proto: 6, frag: 0x2000 }, seg)),
      ),
    ).toEqual([]);
    expect(
      h.inject(
        'wan',
        ether(fromClient, 0x0800, ipv4({ src: CLIENT.ip, dst: VIP, proto: 6, frag: 0x0010 }, seg)),
      ),
    ).toEqual([]);
    expect(
      h.inject(
        'wan',
        ether(fromClient, 0x0800, ipv4({ src: CLIENT.ip, dst: VIP, proto: 47 }, Buffer.alloc(24))),
      ),
    ).toEqual([]);
    expect(
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 1, dport: 81, flags: TCP.SYN }),
      ),
    ).toEqual([]);
    expect(h.counters()).toMatchObject({ drop_fragment: 2, drop_unknown_protocol: 1, drop_no_service: 1 });
  });

  it('counts a full connection table and serves again once a connection expires', () => {
    const h = harness({ maxConnections: 2 });
    h.apply(add(snapshot()));
    expect(h.inject('wan', syn(40000), 0)).toHaveLength(1);
    expect(h.inject('wan', syn(40001), 1)).toHaveLength(1);
    expect(h.inject('wan', syn(40002), 2)).toEqual([]);
    expect(h.counters()).toMatchObject({ drop_conn_table_full: 1, connections: 2 });
    h.expire(30_000);
    expect(h.inject('wan', syn(40002), 30_001)).toHaveLength(1);
  });

  it('counts an exhausted local-port pool, and reuses a port once its connection is gone', () => {
    const h = harness({ localPorts: { min: 50000, max: 50001 } });
    h.apply(add(snapshot()));
    const lport = (f: Buffer) => parseFrame(f).tcp!.sport;
    const a = lport(h.inject('wan', syn(40000), 0)[0]!.frame);
    const b = lport(h.inject('wan', syn(40001), 0)[0]!.frame);
    expect([a, b].sort()).toEqual([50000, 50001]);
    expect(h.inject('wan', syn(40002), 0)).toEqual([]);
    expect(h.counters().drop_local_ports_exhausted).toBe(1);
    h.expire(30_000);
    expect([50000, 50001]).toContain(lport(h.inject('wan', syn(40002), 30_001)[0]!.frame));
  });

  it('spreads connections over several local addresses before giving up', () => {
    const h = harness({ localPorts: { min: 50000, max: 50000 } });
    h.apply(add(snapshot({ localAddresses: ['10.2.0.200', '10.2.0.201'] })));
    const src = [40000, 40001].map((p) => parseFrame(h.inject('wan', syn(p))[0]!.frame).ip!.src);
    expect(src.sort()).toEqual(['10.2.0.200', '10.2.0.201']);
    expect(h.inject('wan', syn(40002))).toEqual([]);
  });

  it('honours the service connection limit', () => {
    const h = harness();
    h.apply(add(snapshot({ maxConnections: 1 })));
    expect(h.inject('wan', syn(40000))).toHaveLength(1);
    expect(h.inject('wan', syn(40001))).toEqual([]);
    expect(h.counters().drop_service_full).toBe(1);
  });

  it('survives random bytes and random truncations', () => {
    const h = harness();
    h.apply(add(snapshot()));
    let seed = 12345;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const base = syn(40000);
    for (let i = 0; i < 3000; i++) {
      const f = Buffer.from(i % 2 ? base : Buffer.alloc(Math.floor(rand() * 120)));
      for (let k = 0; k < 1 + Math.floor(rand() * 4); k++)
        if (f.length) f[Math.floor(rand() * f.length)] = rand() * 256;
      h.inject('wan', f.subarray(0, Math.floor(rand() * (f.length + 1))), i);
    }
    const c = h.counters();
    expect(c.rx_packets).toBe(3000);
  });
});
