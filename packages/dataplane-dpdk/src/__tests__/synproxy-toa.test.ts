import { findToa } from '@fulcrum/toa';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, fromServer, harness, LADDR, SERVERS, snapshot, VIP } from './fixtures.js';
import { parseFrame, TCP, tcpFrame } from './frames.js';
import { toaSettings } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`SYNPROXY with TOA on one connection, packet by packet${need.note}`, () => {
  it('puts TOA on the handshake-completing ACK SYNPROXY sends the server', () => {
    const h = harness();
    h.apply(
      add(
        snapshot({
          synproxy: true,
          passthrough: toaSettings(),
          servers: [{ address: SERVERS[0]!.ip, port: 8080 }],
        }),
      ),
    );
    const client = (f: Parameters<typeof tcpFrame>[1], now: number) =>
      h.inject('wan', tcpFrame(fromClient, f), now);
    const c = { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80 };
    const [sa] = client({ ...c, flags: TCP.SYN, seq: 1000 }, 0);
    const cookie = parseFrame(sa!.frame).tcp!.seq;
    const [syn] = client({ ...c, flags: TCP.ACK, seq: 1001, ack: cookie + 1 }, 10);
    const s = parseFrame(syn!.frame);
    expect(findToa(s.tcp!.options)).toBeUndefined(); // TOA goes on the ACK, not the SYN
    const out = h.inject(
      'lan',
      tcpFrame(fromServer(0), {
        src: SERVERS[0]!.ip,
        dst: LADDR,
        sport: 8080,
        dport: s.tcp!.sport,
        flags: TCP.SYN | TCP.ACK,
        seq: 7000,
        ack: 1001,
      }),
      20,
    );
    expect(out.map((o) => o.port)).toEqual(['lan', 'wan']);
    const ack = parseFrame(out[0]!.frame);
    expect(ack.tcp).toMatchObject({ seq: 1001, ack: 7001, flags: TCP.ACK, checksumOk: true });
    expect(ack.ip!.checksumOk).toBe(true);
    expect(findToa(ack.tcp!.options)).toEqual({ address: CLIENT.ip, port: 40000, family: 4 });
    expect(h.counters().toa_inserted).toBe(1);
  });
});
