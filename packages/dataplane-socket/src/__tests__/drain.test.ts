import { defineHealthCheck, type HealthVerdict } from '@fulcrum/kernel';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  counts,
  harness,
  openClient,
  request,
  tcpBackend,
  tick,
  waitFor,
  type Backend,
  type Harness,
  type OpenClient,
  expectRelayed,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;
let clients: OpenClient[] = [];

afterEach(async () => {
  for (const c of clients) c.socket.destroy();
  clients = [];
  await closeHarness(h, backends);
  h = undefined;
});

/** Opens `n` clients, each exchanging one byte, so they are ESTABLISHED on their servers. */
async function open(n: number): Promise<OpenClient[]> {
  const out: OpenClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await openClient(h!.port);
    c.socket.write('x');
    await c.waitBytes(1);
    out.push(c);
  }
  clients.push(...out);
  return out;
}

const serverOf = (c: OpenClient) =>
  h!.dp.connections().find((e) => e.client.endsWith(`:${c.socket.localPort}`))?.server;

describe.each(relayModes())('taking a server out (%s)', (_, mode) => {
  useRelay(mode);

  it('drain: no new connections; idle ones close cleanly at idleClose, the rest at the deadline', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([
      {
        name: 'web',
        scheduler: 'rr',
        drain: { idleClose: '30s', deadline: '5m' },
        realServers: [{ address: a }, { address: b }],
      },
    ]);
    const [idleOnA, onB, busyOnA] = await open(3);
    expect([idleOnA, onB, busyOnA].map((c) => serverOf(c!))).toEqual([a, b, a]);

    await h.kernel.drainRealServer('web', a);
    expect(h.dp.services()[0]!.servers.find((s) => s.server === a)).toMatchObject({
      draining: true,
      weight: 0,
      activeConns: 2,
    });
    const fresh = await open(2);
    expect(fresh.map(serverOf)).toEqual([b, b]);

    // busyOnA talks every 10 s; idleOnA says nothing.
    for (let t = 0; t < 3; t++) {
      await h.advance(10_000);
      busyOnA!.socket.write('y');
    }
    await idleOnA!.ended; // a FIN from the balancer…
    idleOnA!.socket.end();
    expect((await idleOnA!.closed).error).toBeUndefined(); // …not a reset
    expect(busyOnA!.socket.readyState).toBe('open');
    // The deadline is 5 min after draining started; at 4 min 50 s busyOnA is still open.
    for (let t = 0; t < 26; t++) {
      await h.advance(10_000);
      busyOnA!.socket.write('y');
    }
    expect(busyOnA!.socket.readyState).toBe('open');
    await h.advance(10_000);
    await busyOnA!.ended;
    busyOnA!.socket.end();
    expect((await busyOnA!.closed).error).toBeUndefined();
    // The other server's connections were never touched.
    expect(onB!.socket.readyState).toBe('open');
    expect(counts(h.dp, 'web')[a]!.active).toBe(0);
    expectRelayed(h, 5);
  });

  it('drain, then back in service: the server takes connections again and keeps its old ones', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a }, { address: b }] }]);
    const [onA] = await open(1);
    await h.kernel.drainRealServer('web', a);
    expect((await open(2)).map(serverOf)).toEqual([b, b]);
    await h.kernel.updateRealServer('web', a, { drain: false });
    expect((await open(2)).map(serverOf)).toEqual([a, b]);
    await h.advance(60_000);
    expect(onA!.socket.readyState).toBe('open');
  });

  it('remove with onFailure: remove expires the server connections at once (reset); the others go on', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([
      { name: 'web', scheduler: 'rr', onFailure: 'remove', realServers: [{ address: a }, { address: b }] },
    ]);
    const [onA, onB, onA2] = await open(3);
    await h.kernel.removeRealServer('web', a);
    expect((await onA!.closed).error).toBe('ECONNRESET');
    expect((await onA2!.closed).error).toBe('ECONNRESET');
    await waitFor(() => backends[0]!.sockets.size === 0, 'the removed server sockets closed');
    onB!.socket.write('still here');
    await onB!.waitBytes(1 + 'still here'.length);
    expect((await open(1)).map(serverOf)).toEqual([b]);
    await h.advance(11_000);
    expect(h.dp.services()[0]!.servers.map((s) => s.server)).toEqual([b]);
  });

  it('remove with onFailure: drain: the removed server connections are drained, not cut', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([
      {
        name: 'web',
        scheduler: 'rr',
        onFailure: 'drain',
        drain: { idleClose: '20s', deadline: '2m' },
        realServers: [{ address: a }, { address: b }],
      },
    ]);
    const [onA] = await open(1);
    await h.kernel.removeRealServer('web', a);
    expect(h.dp.services()[0]!.servers.find((s) => s.server === a)).toMatchObject({
      inService: false,
      draining: true,
    });
    await h.advance(10_000);
    onA!.socket.write('still');
    await onA!.waitBytes(1 + 'still'.length);
    await h.advance(21_000);
    await onA!.ended;
    onA!.socket.end();
    expect((await onA!.closed).error).toBeUndefined();
    await h.advance(11_000);
    expect(h.dp.services()[0]!.servers.map((s) => s.server)).toEqual([b]);
  });

  it('inhibit (weight 0, or removal without expire): existing connections run out, as IPVS does', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a }, { address: b }] }]);
    const [onA] = await open(1);
    await h.kernel.setWeight('web', a, 0);
    expect((await open(2)).map(serverOf)).toEqual([b, b]);
    await h.kernel.removeRealServer('web', a);
    await h.advance(60_000);
    onA!.socket.write('z');
    await onA!.waitBytes(2);
    // Still listed (IPVS keeps a removed dest while it has connections), then forgotten.
    expect(h.dp.services()[0]!.servers.find((s) => s.server === a)).toMatchObject({
      inService: false,
      activeConns: 1,
    });
    onA!.socket.end();
    await onA!.closed;
    await h.advance(11_000);
    expect(h.dp.services()[0]!.servers.map((s) => s.server)).toEqual([b]);
  });

  it('a server a health check takes down, with onFailure: drain, is drained on the kernel clock', async () => {
    const reporters = new Map<string, (v: HealthVerdict) => void>();
    const manual = defineHealthCheck({
      name: 'manual',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
      create: () => ({
        watch: (t, report) => (reporters.set(t.server, report), { stop: () => reporters.delete(t.server) }),
      }),
    });
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness(
      [
        {
          name: 'web',
          scheduler: 'rr',
          healthChecks: ['manual'],
          onFailure: 'drain',
          drain: { idleClose: '5s', deadline: '1m' },
          realServers: [{ address: a }, { address: b }],
        },
      ],
      { plugins: [manual] },
    );
    const [onA] = await open(1);
    reporters.get(a)!({ up: false, reason: 'test says down' });
    await waitFor(() => h!.dp.services()[0]!.servers.find((s) => s.server === a)!.draining, 'the drain');
    expect((await open(1)).map(serverOf)).toEqual([b]);
    await h.advance(6_000);
    await onA!.ended;
    await tick();
    expect(counts(h.dp, 'web')[a]!.active).toBe(0);
  });

  it('new connections never reach a drained server, even from a persistent client', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n)));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([
      {
        name: 'web',
        scheduler: 'rr',
        persistence: { timeout: '10m' },
        realServers: [{ address: a }, { address: b }],
      },
    ]);
    expect((await request(h.port)).data).toBe('a');
    expect((await request(h.port)).data).toBe('a');
    await h.kernel.drainRealServer('web', a);
    expect((await request(h.port)).data).toBe('b');
    expect((await request(h.port)).data).toBe('b');
  });
});
