// Cross-check against an independent implementation (proxy-protocol-js, devDependency only):
// what we encode it parses to the same endpoints, and what it builds we decode the same.
import * as pp from 'proxy-protocol-js';
import { describe, expect, it } from 'vitest';
import { decodeProxyHeader, encodeProxyHeader } from '@fulcrum/proxy-protocol';

let state = 42;
const rnd = (n: number) => {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state >>> 8) % n;
};
const v4 = () => Array.from({ length: 4 }, () => rnd(256));
const v6 = () => Array.from({ length: 16 }, () => (rnd(3) === 0 ? 0 : rnd(256)));
const v4Text = (b: number[]) => b.join('.');
// WHATWG URL serialises IPv6 hosts in RFC 5952 form: an oracle for text that owes nothing to our code.
const canonical6 = (text: string) => new URL(`http://[${text}]/`).hostname.slice(1, -1);
const full6 = (b: number[]) =>
  Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16)).join(':');
const v6Text = (b: number[]) => canonical6(full6(b));

describe('cross-check with proxy-protocol-js', () => {
  it('v1 TCP4/TCP6 both ways', () => {
    for (let i = 0; i < 200; i++) {
      const six = rnd(2) === 1;
      const src = six ? v6Text(v6()) : v4Text(v4());
      const dst = six ? v6Text(v6()) : v4Text(v4());
      const sp = rnd(65536);
      const dp = rnd(65536);
      const ours = encodeProxyHeader({
        version: 1,
        source: { address: src, port: sp },
        destination: { address: dst, port: dp },
      }).toString('latin1');
      const theirs = pp.V1ProxyProtocol.parse(ours + 'data');
      expect(theirs.inetProtocol).toBe(six ? 'TCP6' : 'TCP4');
      expect([theirs.source.port, theirs.destination.port]).toEqual([sp, dp]);
      expect(
        six
          ? [canonical6(theirs.source.ipAddress), canonical6(theirs.destination.ipAddress)]
          : [theirs.source.ipAddress, theirs.destination.ipAddress],
      ).toEqual([src, dst]);
      expect(theirs.data).toBe('data');

      const built = new pp.V1ProxyProtocol(
        six ? pp.INETProtocol.TCP6 : pp.INETProtocol.TCP4,
        new pp.Peer(src, sp),
        new pp.Peer(dst, dp),
        'x',
      ).build();
      const { header, rest } = decodeProxyHeader(Buffer.from(built, 'latin1'));
      expect(header).toMatchObject({
        family: six ? 'inet6' : 'inet',
        source: { address: src, port: sp },
        destination: { address: dst, port: dp },
      });
      expect(rest.toString()).toBe('x');
    }
  });

  it('v2 INET/INET6, TCP/UDP, PROXY/LOCAL both ways', () => {
    for (let i = 0; i < 200; i++) {
      const six = rnd(2) === 1;
      const dgram = rnd(2) === 1;
      const local = rnd(5) === 0;
      const [sb, db] = six ? [v6(), v6()] : [v4(), v4()];
      const sp = rnd(65536);
      const dp = rnd(65536);
      const src = six ? v6Text(sb) : v4Text(sb);
      const dst = six ? v6Text(db) : v4Text(db);
      const transport = dgram ? pp.TransportProtocol.DGRAM : pp.TransportProtocol.STREAM;
      const address = six
        ? new pp.IPv6ProxyAddress(pp.IPv6Address.createFrom(sb), sp, pp.IPv6Address.createFrom(db), dp)
        : new pp.IPv4ProxyAddress(pp.IPv4Address.createFrom(sb), sp, pp.IPv4Address.createFrom(db), dp);

      if (!local) {
        const ours = encodeProxyHeader({
          version: 2,
          transport: dgram ? 'dgram' : 'stream',
          source: { address: src, port: sp },
          destination: { address: dst, port: dp },
        });
        const theirs = pp.V2ProxyProtocol.parse(ours);
        expect(theirs.command).toBe(pp.Command.PROXY);
        expect(theirs.transportProtocol).toBe(transport);
        const a = theirs.proxyAddress as pp.IPv4ProxyAddress | pp.IPv6ProxyAddress;
        expect([
          a.sourceAddress.address,
          a.sourcePort,
          a.destinationAddress.address,
          a.destinationPort,
        ]).toEqual([sb, sp, db, dp]);
        // Same layout, so the bytes must agree exactly.
        expect(
          Buffer.from(new pp.V2ProxyProtocol(pp.Command.PROXY, transport, address).build()).equals(ours),
        ).toBe(true);
      }

      const built = new pp.V2ProxyProtocol(
        local ? pp.Command.LOCAL : pp.Command.PROXY,
        transport,
        address,
        new Uint8Array([1, 2, 3]),
      ).build();
      const { header, rest } = decodeProxyHeader(built);
      expect(header).toMatchObject({
        command: local ? 'local' : 'proxy',
        family: six ? 'inet6' : 'inet',
        transport: dgram ? 'dgram' : 'stream',
        source: { address: src, port: sp },
        destination: { address: dst, port: dp },
      });
      expect([...rest]).toEqual([1, 2, 3]);
    }
  });

  it('v2 LOCAL as we send it parses there as LOCAL', () => {
    const theirs = pp.V2ProxyProtocol.parse(encodeProxyHeader({ version: 2, command: 'local' }));
    expect(theirs.command).toBe(pp.Command.LOCAL);
  });
});
