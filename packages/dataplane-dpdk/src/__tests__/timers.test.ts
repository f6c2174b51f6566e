import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { add, CLIENT, fromClient, fromServer, harness, LADDR, snapshot, VIP } from './fixtures.js';
import { parseFrame, TCP, tcpFrame, udpFrame } from './frames.js';

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`connection expiry on the timer wheel${need.note}`, () => {
  const established = (h: ReturnType<typeof harness>, sport: number, now: number) => {
    const s = parseFrame(
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, flags: TCP.SYN }),
        now,
      )[0]!.frame,
    );
    h.inject(
      'lan',
      tcpFrame(fromServer(0), {
        src: s.ip!.dst,
        dst: LADDR,
        sport: 8080,
        dport: s.tcp!.sport,
        flags: TCP.SYN | TCP.ACK,
      }),
      now,
    );
    h.inject(
      'wan',
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, flags: TCP.ACK }),
      now,
    );
  };

  it('expires exactly on time a timeout longer than one turn of the wheel', () => {
    const h = harness({ timeouts: { established: 300_000 } });
    h.apply(add(snapshot()));
    established(h, 40000, 1000);
    for (let t = 1000; t < 301_000; t += 7_000) expect(h.expire(t)).toBe(0);
    expect(h.expire(300_999)).toBe(0);
    expect(h.expire(301_000)).toBe(1);
  });

  it('keeps an active connection, and expires it a timeout after its last packet', () => {
    const h = harness({ timeouts: { established: 60_000 } });
    h.apply(add(snapshot()));
    established(h, 40000, 0);
    let t = 0;
    for (let i = 0; i < 10; i++) {
      t += 50_000;
      expect(h.expire(t)).toBe(0);
      h.inject(
        'wan',
        tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags: TCP.ACK }),
        t,
      );
    }
    expect(h.expire(t + 59_999)).toBe(0);
    expect(h.expire(t + 60_000)).toBe(1);
  });

  it('agrees with a brute-force count over thousands of sessions and irregular sweeps', () => {
    const h = harness({
      timeouts: { udpOneway: 10_000, udp: 30_000 },
      localPorts: { min: 1024, max: 20000 },
    });
    h.apply(add(snapshot({ protocol: 'udp', port: 53 })));
    let seed = 7;
    const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const expiries: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const now = Math.floor(rand() * 100_000);
      h.inject('wan', udpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 1024 + i, dport: 53 }), now);
      expiries.push(now + 10_000);
    }
    // Sessions created "in the past" relative to each other: sweep from the earliest on.
    let done = 0;
    for (let t = 0; t <= 120_000; t += Math.floor(rand() * 3000)) {
      done += h.expire(t);
      expect(done).toBe(expiries.filter((e) => e <= t).length);
    }
  });
});
