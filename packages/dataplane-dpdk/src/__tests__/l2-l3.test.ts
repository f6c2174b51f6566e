import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { PacketHarness } from '../harness.js';
import { nativeUnavailableReason } from '../native.js';
import {
  add,
  update,
  CLIENT,
  fromClient,
  fromServer,
  harness,
  LADDR,
  LAN_MAC,
  SERVERS,
  snapshot,
  VIP,
  WAN_MAC,
} from './fixtures.js';
import { arpFrame, icmpEchoFrame, parseFrame, TCP, tcpFrame } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`ARP, neighbours and ICMP echo${need.note}`, () => {
  it('answers ARP for a VIP on the port whose network holds it, and for local addresses on theirs', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const [reply] = h.inject('wan', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', VIP));
    expect(reply!.port).toBe('wan');
    expect(parseFrame(reply!.frame)).toMatchObject({
      eth: { src: WAN_MAC, dst: CLIENT.mac, type: 0x0806 },
      arp: { op: 2, sha: WAN_MAC, spa: VIP, tha: CLIENT.mac, tpa: CLIENT.ip },
    });
    const [lreply] = h.inject(
      'lan',
      arpFrame(1, SERVERS[0]!.mac, SERVERS[0]!.ip, '00:00:00:00:00:00', LADDR),
    );
    expect(parseFrame(lreply!.frame).arp).toMatchObject({
      op: 2,
      sha: LAN_MAC,
      spa: LADDR,
      tpa: SERVERS[0]!.ip,
    });
    // The VIP's network is on wan: a request for it on lan is not ours to answer.
    expect(h.inject('lan', arpFrame(1, SERVERS[0]!.mac, SERVERS[0]!.ip, '00:00:00:00:00:00', VIP))).toEqual(
      [],
    );
    // Nor is an address we do not own.
    expect(h.inject('wan', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', '10.1.0.77'))).toEqual([]);
    // The port's own address is answered too.
    expect(
      parseFrame(
        h.inject('wan', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', '10.1.0.1'))[0]!.frame,
      ).arp!.spa,
    ).toBe('10.1.0.1');
    expect(h.counters()).toMatchObject({ arp_replies: 3, drop_arp_other: 2 });
  });

  it('announces new VIPs and local addresses with gratuitous ARP, once, on the ports that hold them', () => {
    const h = harness();
    const sent = h.apply(add(snapshot())).map((e) => ({ port: e.port, ...parseFrame(e.frame) }));
    expect(sent).toEqual([
      expect.objectContaining({
        port: 'wan',
        eth: { src: WAN_MAC, dst: 'ff:ff:ff:ff:ff:ff', type: 0x0806 },
        arp: { op: 1, sha: WAN_MAC, spa: VIP, tha: '00:00:00:00:00:00', tpa: VIP },
      }),
      expect.objectContaining({
        port: 'lan',
        arp: expect.objectContaining({ sha: LAN_MAC, spa: LADDR, tpa: LADDR }),
      }),
    ]);
    expect(h.apply(update(snapshot({ version: 2 })))).toEqual([]);
    const udp = h.apply(add(snapshot({ name: 'dns', protocol: 'udp', port: 53 })));
    expect(udp).toEqual([]); // same VIP and local address: already announced
    expect(h.counters().garp_sent).toBe(2);
  });

  it('resolves an unknown next hop with an ARP request, learns the reply, then forwards', () => {
    const h = harness({ neighbors: [{ port: 'wan', address: CLIENT.ip, mac: CLIENT.mac }] });
    h.apply(add(snapshot()));
    const syn = tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags: TCP.SYN });
    const [req, ...rest] = h.inject('wan', syn);
    expect(rest).toEqual([]); // the SYN itself is dropped: the client retransmits
    expect(req!.port).toBe('lan');
    expect(parseFrame(req!.frame)).toMatchObject({
      eth: { src: LAN_MAC, dst: 'ff:ff:ff:ff:ff:ff', type: 0x0806 },
      arp: { op: 1, sha: LAN_MAC, spa: '10.2.0.1', tpa: SERVERS[0]!.ip },
    });
    expect(h.counters()).toMatchObject({ drop_neigh_miss: 1, arp_requests_sent: 1 });
    h.inject('lan', arpFrame(2, SERVERS[0]!.mac, SERVERS[0]!.ip, LAN_MAC, '10.2.0.1'));
    const [fwd] = h.inject('wan', syn);
    expect(parseFrame(fwd!.frame).eth.dst).toBe(SERVERS[0]!.mac);
    expect(h.counters().arp_learned).toBe(1);
  });

  it('sends at most one ARP request per unresolved neighbour per second, and counts the rest', () => {
    const h = harness({ neighbors: [{ port: 'wan', address: CLIENT.ip, mac: CLIENT.mac }] });
    h.apply(add(snapshot({ servers: [{ address: SERVERS[0]!.ip, port: 8080 }] })));
    const syn = (sport: number) =>
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, flags: TCP.SYN });
    const arps = (sent: { port: string; frame: Buffer }[]) =>
      sent.filter((e) => parseFrame(e.frame).eth.type === 0x0806);
    let requests = 0;
    for (let i = 0; i < 50; i++) requests += arps(h.inject('wan', syn(40000 + i), 10 + i * 10)).length;
    expect(requests).toBe(1); // 50 SYNs toward one unresolved server within 0.5 s
    const c = h.counters();
    expect(c.arp_requests_sent).toBe(1);
    expect(c.arp_requests_suppressed).toBe(49);
    expect(c.drop_neigh_miss).toBe(50);
    const later = arps(h.inject('wan', syn(41000), 1010));
    expect(later).toHaveLength(1); // the retransmit interval passed: asked again
    expect(parseFrame(later[0]!.frame).arp).toMatchObject({ op: 1, tpa: SERVERS[0]!.ip });
    h.inject('lan', arpFrame(2, SERVERS[0]!.mac, SERVERS[0]!.ip, LAN_MAC, '10.2.0.1'));
    const [fwd] = h.inject('wan', syn(41001), 1020);
    expect(parseFrame(fwd!.frame).eth.dst).toBe(SERVERS[0]!.mac);
  });

  it('bounds the neighbours awaiting resolution, forgetting those unanswered for 3 s', () => {
    const h = harness({
      ports: [
        { name: 'wan', mac: WAN_MAC, addresses: ['10.1.0.1/16'] },
        { name: 'lan', mac: LAN_MAC, addresses: ['10.2.0.1/24'] },
      ],
      neighbors: [],
    });
    h.apply(add(snapshot()));
    const echo = (i: number) =>
      icmpEchoFrame(
        { src: '02:00:00:00:09:99', dst: WAN_MAC },
        `10.1.${2 + (i >> 8)}.${i & 0xff}`,
        VIP,
        7,
        i,
        Buffer.from('x'),
      );
    let requests = 0;
    for (let i = 0; i < 300; i++) requests += h.inject('wan', echo(i), 100).length;
    expect(requests).toBe(256);
    expect(h.counters()).toMatchObject({ arp_requests_sent: 256, arp_requests_suppressed: 44 });
    expect(h.inject('wan', echo(299), 2000)).toEqual([]); // still full: entries are 1.9 s old
    const [req] = h.inject('wan', echo(299), 3100); // the unanswered ones are forgotten
    expect(parseFrame(req!.frame).arp).toMatchObject({ op: 1, tpa: '10.1.3.43' });
    expect(h.counters().arp_requests_sent).toBe(257);
  });

  it('does not learn neighbours from ARP outside the port networks', () => {
    const h = harness({ neighbors: [] });
    h.inject('wan', arpFrame(1, '02:99:00:00:00:01', '192.0.2.9', '00:00:00:00:00:00', '10.1.0.1'));
    expect(h.counters().arp_learned).toBe(0);
  });

  it('answers ICMP echo for a VIP, with valid checksums', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const data = Buffer.from('abcdefghijklmnopqrstuvw'); // odd length
    const [reply] = h.inject('wan', icmpEchoFrame(fromClient, CLIENT.ip, VIP, 7, 3, data));
    expect(reply!.port).toBe('wan');
    const r = parseFrame(reply!.frame);
    expect(r.eth).toMatchObject({ src: WAN_MAC, dst: CLIENT.mac });
    expect(r.ip).toMatchObject({ src: VIP, dst: CLIENT.ip, proto: 1, checksumOk: true });
    expect(r.icmp).toEqual({ type: 0, code: 0, id: 7, seq: 3, checksumOk: true });
    expect(r.payload.equals(data)).toBe(true);
    // Not for addresses that are not ours, and only echo requests.
    expect(h.inject('wan', icmpEchoFrame(fromClient, CLIENT.ip, '10.1.0.99', 7, 3, data))).toEqual([]);
    const notEcho = icmpEchoFrame(fromClient, CLIENT.ip, VIP, 7, 3, data);
    notEcho[34] = 13; // timestamp request
    notEcho.writeUInt16BE(0, 36);
    const sum = (b: Buffer) => {
      let s = 0;
      for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
      if (b.length & 1) s += b[b.length - 1]! << 8;
      while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
      return ~s & 0xffff;
    };
    notEcho.writeUInt16BE(sum(notEcho.subarray(34)), 36);
    expect(h.inject('wan', notEcho)).toEqual([]);
    expect(h.counters()).toMatchObject({ icmp_echo_replies: 1, drop_not_ours: 1, drop_icmp_other: 1 });
  });

  it('serves a one-arm topology: clients and servers behind the same port', () => {
    const h = new PacketHarness({
      ports: [{ name: 'eth', mac: WAN_MAC, addresses: ['10.1.0.1/24', '10.2.0.1/24'] }],
      neighbors: [
        { port: 'eth', address: CLIENT.ip, mac: CLIENT.mac },
        { port: 'eth', address: SERVERS[0]!.ip, mac: SERVERS[0]!.mac },
      ],
    });
    h.apply(add(snapshot({ servers: [{ address: SERVERS[0]!.ip, port: 8080 }] })));
    const [out] = h.inject(
      'eth',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags: TCP.SYN }),
    );
    expect(out!.port).toBe('eth');
    const s = parseFrame(out!.frame);
    expect(s).toMatchObject({
      eth: { src: WAN_MAC, dst: SERVERS[0]!.mac },
      ip: { src: LADDR, dst: SERVERS[0]!.ip },
    });
    const [back] = h.inject(
      'eth',
      tcpFrame(
        { src: SERVERS[0]!.mac, dst: WAN_MAC },
        { src: SERVERS[0]!.ip, dst: LADDR, sport: 8080, dport: s.tcp!.sport, flags: TCP.SYN | TCP.ACK },
      ),
    );
    expect(parseFrame(back!.frame)).toMatchObject({
      eth: { dst: CLIENT.mac },
      ip: { src: VIP, dst: CLIENT.ip, checksumOk: true },
    });
    // ARP for the VIP and the local address is answered on the one port.
    expect(h.inject('eth', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', LADDR))).toHaveLength(1);
  });

  it('routes replies to clients beyond the gateway through the gateway', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const far = '198.51.100.7';
    const syn = tcpFrame(fromClient, { src: far, dst: VIP, sport: 50000, dport: 80, flags: TCP.SYN });
    const s = parseFrame(h.inject('wan', syn)[0]!.frame);
    const [sa] = h.inject(
      'lan',
      tcpFrame(fromServer(0), {
        src: s.ip!.dst,
        dst: LADDR,
        sport: 8080,
        dport: s.tcp!.sport,
        flags: TCP.SYN | TCP.ACK,
      }),
    );
    expect(parseFrame(sa!.frame)).toMatchObject({ eth: { dst: '02:00:00:00:01:fe' }, ip: { dst: far } });
  });
});
