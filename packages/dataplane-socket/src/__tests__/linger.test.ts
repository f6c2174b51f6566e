import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  counts,
  expectRelayed,
  harness,
  relayModes,
  request,
  tcpBackend,
  waitFor,
  type Backend,
  type Harness,
  useRelay,
} from './helpers.js';

// Closed TCP connections linger for timeWait (TIME_WAIT, or CLOSE after a reset) outside the
// table's Conn objects, in a ring: these tests check that they are listed, counted as
// inactive on their server, keep a server that left the service (and a removed service)
// around, and leave in the order they came, each timeWait after its close.

let backends: Backend[] = [];
let h: Harness | undefined;

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
});

const TIME_WAIT = 10_000;

describe.each(relayModes())('lingering closed connections (%s)', (_, mode) => {
  useRelay(mode);

  it('are listed and counted until timeWait after their close, oldest first, and keep a removed server', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n)));
    const [a, b] = backends as [Backend, Backend];
    const both = [{ address: a.address }, { address: b.address }];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: both }]);

    // 100 connections now and 60 four seconds later: more than the ring's first size, so
    // it grows (and wraps as the first ones leave).
    const run = async (n: number) => {
      for (let i = 0; i < n; i++) expect((await request(h!.port)).data).toMatch(/^[ab]$/);
    };
    await run(100);
    await waitFor(() => h!.dp.connections().length === 100 && h!.dp.size === 100, '100 entries');
    await h.advance(4000);
    await run(60);
    await waitFor(() => h!.dp.connections().length === 160, '160 entries');
    const listed = h.dp.connections();
    expect(listed.every((e) => e.state === 'TIME_WAIT' && e.server !== '-')).toBe(true);
    expect(listed.every((e) => e.virtual === `127.0.0.1:${h!.port}` && e.service === 'web')).toBe(true);
    expect(new Set(listed.map((e) => e.client)).size).toBe(160);
    // expiresInMs counts down from timeWait since each close.
    const left = listed.map((e) => e.expiresInMs).sort((x, y) => x - y);
    expect(left[0]).toBeGreaterThan(TIME_WAIT - 4000 - 1000);
    expect(left[0]).toBeLessThanOrEqual(TIME_WAIT - 4000);
    expect(left[159]).toBeGreaterThan(TIME_WAIT - 1000);
    expect(counts(h.dp, 'web')).toEqual({
      [a.address]: { active: 0, inactive: 80 },
      [b.address]: { active: 0, inactive: 80 },
    });

    // b leaves the service: it stays listed (out of service) while it has lingering entries.
    await h.apply([{ name: 'web', scheduler: 'rr', realServers: [{ address: a.address }] }]);
    expect(h.dp.services()[0]!.servers.find((s) => s.server === b.address)).toMatchObject({
      inService: false,
      inactiveConns: 80,
      conns: 80,
    });

    // The first 100 leave timeWait after their close; the 60 later ones stay.
    await h.advance(TIME_WAIT - 4000 + 1000);
    expect(h.dp.size).toBe(60);
    expect(h.dp.connections()).toHaveLength(60);
    expect(counts(h.dp, 'web')).toEqual({
      [a.address]: { active: 0, inactive: 30 },
      [b.address]: { active: 0, inactive: 30 },
    });
    await h.advance(4000);
    expect(h.dp.size).toBe(0);
    expect(h.dp.connections()).toEqual([]);
    // b is forgotten with its last entry; a keeps its totals.
    expect(h.dp.services()[0]!.servers.map((s) => [s.server, s.inactiveConns, s.conns])).toEqual([
      [a.address, 0, 80],
    ]);
    // (Handed over only once answered: these are too short-lived to be, with hand-over.)
    expectRelayed(h, mode.relay === 'native' ? 160 : 0);
  });

  it('a removed service stays listed while its closed connections linger, then goes', async () => {
    backends = [await tcpBackend('a')];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }]);
    for (let i = 0; i < 3; i++) expect((await request(h.port)).data).toBe('a');
    await waitFor(() => h!.dp.connections().length === 3, '3 entries');
    await h.apply([]);
    const retiring = h.dp.services();
    expect(retiring).toHaveLength(1);
    expect(retiring[0]).toMatchObject({ name: 'web', retiring: true, liveConns: 0 });
    expect(retiring[0]!.servers[0]).toMatchObject({ inactiveConns: 3 });
    expect(h.dp.connections().map((e) => [e.service, e.state])).toEqual(Array(3).fill(['web', 'TIME_WAIT']));
    await h.advance(TIME_WAIT + 1000);
    expect(h.dp.size).toBe(0);
    expect(h.dp.services()).toEqual([]);
  });
});
