import type { Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  counts,
  freeUdpPort,
  harness,
  tick,
  udpAsk,
  udpBackend,
  udpClient,
  waitFor,
  type Harness,
  type UdpBackend,
} from './helpers.js';

let backends: UdpBackend[] = [];
let clients: Socket[] = [];
let h: Harness | undefined;

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
  for (const c of clients) c.close();
  clients = [];
});

const udpService = (servers: string[], extra: Record<string, unknown> = {}) => ({
  name: 'dns',
  protocol: 'udp' as const,
  scheduler: 'rr',
  realServers: servers.map((address) => ({ address })),
  ...extra,
});

describe('UDP sessions', () => {
  it('keeps each client on its server, answers from the VIP, and forgets idle sessions at timeouts.udp', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => udpBackend(n)));
    h = await harness([udpService(backends.map((b) => b.address))]);
    clients = await Promise.all(Array.from({ length: 30 }, () => udpClient()));
    const vip = `127.0.0.1:${h.port}`;
    const first = await Promise.all(clients.map((c, i) => udpAsk(c, h!.port, `q${i}`)));
    for (const [i, r] of first.entries()) {
      expect(r?.from).toBe(vip);
      expect(r?.data).toMatch(new RegExp(`^[abc]:q${i}$`));
    }
    const tally: Record<string, number> = {};
    for (const r of first) tally[r!.data[0]!] = (tally[r!.data[0]!] ?? 0) + 1;
    expect(tally).toEqual({ a: 10, b: 10, c: 10 });
    // Later datagrams of a client go to the same server, through the same session.
    const again = await Promise.all(clients.map((c, i) => udpAsk(c, h!.port, `again${i}`)));
    for (const [i, r] of again.entries()) expect(r!.data[0]).toBe(first[i]!.data[0]);
    const rows = h.dp.connections();
    expect(rows).toHaveLength(30);
    expect(rows.every((r) => r.protocol === 'UDP' && r.state === 'ESTABLISHED' && r.virtual === vip)).toBe(
      true,
    );
    expect(Object.values(counts(h.dp, 'dns'))).toEqual(Array(3).fill({ active: 10, inactive: 0 }));
    // Each session has its own source port toward its server (FULLNAT).
    expect(new Set(backends.flatMap((b) => b.received.map((r) => r.from))).size).toBe(30);
    await h.advance(4 * 60_000, 30_000);
    expect(h.dp.size).toBe(30);
    await h.advance(61_000, 30_000);
    expect(h.dp.size).toBe(0);
    expect(h.events['connection:closed']).toHaveLength(30);
  });

  it('a session that never hears back expires in ONEWAY at timeouts.udpOneway: a passive-health failure', async () => {
    backends = [await udpBackend('quiet', { silent: true })];
    h = await harness([udpService([backends[0]!.address])], { options: { timeouts: { udpOneway: '20s' } } });
    clients = [await udpClient()];
    expect(await udpAsk(clients[0]!, h.port, 'hello?', 100)).toBeUndefined();
    await waitFor(() => backends[0]!.received.length === 1, 'the datagram at the server');
    expect(h.dp.connections()).toMatchObject([{ protocol: 'UDP', state: 'ONEWAY' }]);
    expect(counts(h.dp, 'dns')[backends[0]!.address]).toEqual({ active: 0, inactive: 1 });
    await h.advance(21_000);
    expect(h.dp.size).toBe(0);
    expect(h.events['health:signal']).toEqual([
      { service: 'dns', server: backends[0]!.address, ok: false, reason: 'oneway-expired' },
    ]);
    expect(h.events['connection:failed']).toMatchObject([
      { server: backends[0]!.address, reason: 'oneway-expired', retried: false },
    ]);
  });

  it('ICMP port unreachable (ECONNREFUSED) moves the session to another server and resends', async () => {
    const closed = `127.0.0.1:${await freeUdpPort()}`;
    backends = [await udpBackend('b')];
    h = await harness([udpService([closed, backends[0]!.address])]);
    clients = [await udpClient()];
    const c = clients[0]!;
    // The first datagram goes to the closed port; the refusal comes back as ICMP, and
    // the session moves on, resending what was never answered.
    let reply = await udpAsk(c, h.port, 'one', 1000);
    if (!reply) reply = await udpAsk(c, h.port, 'two');
    expect(reply?.data).toMatch(/^b:(one|two)$/);
    expect(h.events['connection:failed']).toMatchObject([
      { server: closed, reason: 'refused', retried: true },
    ]);
    expect(h.events['health:signal']!.filter((s) => !s.ok)).toMatchObject([{ server: closed, ok: false }]);
    expect(h.dp.connections()).toMatchObject([{ state: 'ESTABLISHED', server: backends[0]!.address }]);
  });

  it('refuses sessions beyond maxConnections (counted) and serves the others', async () => {
    backends = [await udpBackend('a')];
    h = await harness([udpService([backends[0]!.address], { maxConnections: 2 })]);
    clients = await Promise.all([udpClient(), udpClient(), udpClient()]);
    expect((await udpAsk(clients[0]!, h.port, 'x'))?.data).toBe('a:x');
    expect((await udpAsk(clients[1]!, h.port, 'y'))?.data).toBe('a:y');
    expect(await udpAsk(clients[2]!, h.port, 'z', 200)).toBeUndefined();
    expect((await udpAsk(clients[0]!, h.port, 'x2'))?.data).toBe('a:x2');
    const refused = await h.kernel.metrics.registry
      .getSingleMetric('fulcrum_connections_refused_total')!
      .get();
    expect(refused.values).toEqual([{ labels: { service: 'dns', reason: 'max-connections' }, value: 1 }]);
  });

  it('sends from the FULLNAT local addresses in turn', async () => {
    backends = [await udpBackend('a')];
    h = await harness([udpService([backends[0]!.address], { localAddresses: ['127.0.0.2', '127.0.0.3'] })]);
    clients = await Promise.all(Array.from({ length: 4 }, () => udpClient()));
    for (const c of clients) expect((await udpAsk(c, h.port, 'x'))?.data).toBe('a:x');
    expect(backends[0]!.received.map((r) => r.from.split(':')[0])).toEqual([
      '127.0.0.2',
      '127.0.0.3',
      '127.0.0.2',
      '127.0.0.3',
    ]);
    await tick();
  });
});
