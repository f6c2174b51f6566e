import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, harness, LAN_MAC, snapshot, WAN_MAC } from './fixtures.js';
import { TCP } from './frames.js';
import { Flow, mssOf, synOptions, toaSettings } from './insert-flow.js';

const need = requires({ check: nativeUnavailableReason });

const ports = (wan: number, lan: number) => [
  { name: 'wan', mac: WAN_MAC, addresses: ['10.1.0.1/24'], mtu: wan },
  { name: 'lan', mac: LAN_MAC, addresses: ['10.2.0.1/24'], mtu: lan },
];

describe.skipIf(need.skip)(`MSS clamping (tcp.mssClamp), packet by packet${need.note}`, () => {
  it('lowers the MSS of SYN and SYN-ACK to a fixed value, never raises it', () => {
    const h = harness({ tcp: { mssClamp: 1400 } });
    h.apply(add(snapshot()));
    const f = new Flow(h, 43000);
    const [syn] = f.client({ flags: TCP.SYN, seq: 1, options: synOptions(1460) });
    expect(mssOf(syn!.tcp!.options)).toBe(1400);
    expect(syn!.tcp!.checksumOk).toBe(true);
    const [synAck] = f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: 9, ack: 2, options: synOptions(1460) });
    expect(mssOf(synAck!.tcp!.options)).toBe(1400);
    expect(synAck!.tcp!.checksumOk).toBe(true);
    const g = new Flow(h, 43001);
    const [small] = g.client({ flags: TCP.SYN, seq: 1, options: synOptions(1200) });
    expect(mssOf(small!.tcp!.options)).toBe(1200);
    expect(h.counters().mss_clamped).toBe(2);
  });

  it("'auto' uses the output port's MTU − 40; TOA services also leave the option's 8 bytes (DPVS)", () => {
    const h = harness({ tcp: { mssClamp: 'auto' }, ports: ports(1500, 1400) });
    h.apply(add(snapshot({ passthrough: toaSettings() })));
    const f = new Flow(h, 43002);
    const [syn] = f.client({ flags: TCP.SYN, seq: 1, options: synOptions(1460) });
    expect(mssOf(syn!.tcp!.options)).toBe(1360);
    const [synAck] = f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: 9, ack: 2, options: synOptions(1460) });
    expect(mssOf(synAck!.tcp!.options)).toBe(1452);
    expect(synAck!.tcp!.checksumOk).toBe(true);
    expect(h.counters().mss_clamped).toBe(1);
  });

  it('is off by default', () => {
    const h = harness();
    h.apply(add(snapshot()));
    const f = new Flow(h, 43003);
    const [syn] = f.client({ flags: TCP.SYN, seq: 1, options: synOptions(8960) });
    expect(mssOf(syn!.tcp!.options)).toBe(8960);
    expect(h.counters().mss_clamped).toBe(0);
  });
});
