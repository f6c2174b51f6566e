import type { Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  harness,
  openClient,
  request,
  tcpBackend,
  udpAsk,
  udpBackend,
  udpClient,
  type Backend,
  type Harness,
  type UdpBackend,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: (Backend | UdpBackend)[] = [];
let h: Harness | undefined;
let sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets) s.close();
  sockets = [];
  await closeHarness(h, backends);
  h = undefined;
});

/** A request from a given client address (the whole of 127/8 is local on Linux). */
const from = (address: string) => request(h!.port, 'hi', { localAddress: address }).then((r) => r.data);

describe.each(relayModes())('persistence (IPVS templates) (%s)', (_, mode) => {
  useRelay(mode);

  it('sends a client address back to its server while the template lives, then schedules anew', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => tcpBackend(n)));
    h = await harness(
      [
        {
          name: 'web',
          scheduler: 'rr',
          persistence: { timeout: '60s' },
          realServers: backends.map((b) => ({ address: b.address })),
        },
      ],
      {
        options: { timeouts: { timeWait: 0 } },
      },
    );
    expect(await from('127.0.0.2')).toBe('a');
    expect(await from('127.0.0.3')).toBe('b');
    expect(await from('127.0.0.2')).toBe('a');
    expect(await from('127.0.0.2')).toBe('a');
    expect(await from('127.0.0.4')).toBe('c');
    expect(await from('127.0.0.3')).toBe('b');

    const templates = h.dp.connections().filter((e) => e.template);
    expect(templates.map((t) => [t.client, t.server, t.state]).sort()).toEqual(
      [
        ['127.0.0.2:0', backends[0]!.address, 'NONE'],
        ['127.0.0.3:0', backends[1]!.address, 'NONE'],
        ['127.0.0.4:0', backends[2]!.address, 'NONE'],
      ].sort(),
    );
    expect(h.dp.services()[0]!.servers.map((s) => s.persistentConns)).toEqual([1, 1, 1]);

    await h.advance(61_000);
    expect(h.dp.connections()).toEqual([]);
    // The rr cursor went on meanwhile (a, b, c): 127.0.0.2 now lands wherever rr is.
    expect(await from('127.0.0.2')).toBe('a');
    expect(await from('127.0.0.3')).toBe('b');
    expect(await from('127.0.0.2')).toBe('a');
  });

  it('a template never expires while a connection it placed is open', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    h = await harness([
      {
        name: 'web',
        scheduler: 'rr',
        persistence: { timeout: '30s' },
        realServers: backends.map((b) => ({ address: b.address })),
      },
    ]);
    const c = await openClient(h.port, '127.0.0.1', '127.0.0.5');
    c.socket.write('x');
    await c.waitBytes(1);
    await h.advance(120_000, 10_000);
    expect(h.dp.connections({ templates: true }).filter((e) => e.template)).toHaveLength(1);
    // Another connection from the same address still lands on the template's server.
    const c2 = await openClient(h.port, '127.0.0.1', '127.0.0.5');
    c2.socket.write('y');
    await c2.waitBytes(1);
    const servers = new Set(h.dp.connections({ templates: false }).map((e) => e.server));
    expect(servers.size).toBe(1);
    for (const s of [c, c2]) s.socket.end();
    await Promise.all([c.closed, c2.closed]);
    await h.advance(31_000);
    expect(h.dp.connections().filter((e) => e.template)).toHaveLength(0);
  });

  it('UDP: every port of a client address goes to the same server', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => udpBackend(n)));
    h = await harness([
      {
        name: 'dns',
        protocol: 'udp',
        scheduler: 'rr',
        persistence: { timeout: '60s' },
        realServers: backends.map((b) => ({ address: b.address })),
      },
    ]);
    sockets = await Promise.all(Array.from({ length: 6 }, () => udpClient()));
    const answers = await Promise.all(sockets.map((s) => udpAsk(s, h!.port, 'q')));
    expect(new Set(answers.map((a) => a?.data))).toEqual(new Set(['a:q']));
    expect(h.dp.connections().filter((e) => !e.template)).toHaveLength(6);
  });
});
