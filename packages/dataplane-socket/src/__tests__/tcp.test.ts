import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  counts,
  freePort,
  harness,
  openClient,
  request,
  tcpBackend,
  tick,
  waitFor,
  type Backend,
  type Harness,
  expectRelayed,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;
const servers: Server[] = [];

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

const listen = (s: Server) =>
  new Promise<number>((r) => s.listen(0, '127.0.0.1', () => r((s.address() as { port: number }).port)));

describe.each(relayModes())('TCP relay (%s)', (_, mode) => {
  useRelay(mode);

  it('spreads many clients over several servers in rr order, and the table returns to zero', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => tcpBackend(n)));
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
      {
        options: { timeouts: { timeWait: 0 } },
      },
    );
    const first: string[] = [];
    for (let i = 0; i < 6; i++) first.push((await request(h.port)).data);
    expect(first).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);

    const results = await Promise.all(Array.from({ length: 300 }, () => request(h!.port)));
    const tally: Record<string, number> = {};
    for (const r of results) {
      expect(r.error).toBeUndefined();
      tally[r.data] = (tally[r.data] ?? 0) + 1;
    }
    expect(tally).toEqual({ a: 100, b: 100, c: 100 });
    await waitFor(() => h!.dp.size === 0, 'an empty table');
    for (const c of Object.values(counts(h.dp, 'web'))) expect(c).toEqual({ active: 0, inactive: 0 });
    expect(h.dp.services()[0]!.liveConns).toBe(0);
  });

  it.each([
    [' (splice)', {}],
    [' (relaySplice: false)', { relaySplice: false }],
  ])(
    'relays both ways byte for byte, and back-pressure stops it reading a client whose server is stuck%s',
    async (_, options) => {
      backends = [await tcpBackend('e', 'echo')];
      h = await harness(
        [{ name: 'echo', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }],
        {
          options,
        },
      );
      // More than the kernel can absorb on loopback (rcvbufs autotune up to tcp_rmem max, 32 MiB
      // here): the rest must wait in the client, not in the balancer.
      const payload = Buffer.alloc(128 * 1024 * 1024);
      for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
      const c = await openClient(h.port);
      const chunks: Buffer[] = [];
      c.socket.removeAllListeners('data');
      c.socket.on('data', (d: Buffer) => chunks.push(d));
      // The client does not read: the echo server blocks writing, stops reading, and the
      // balancer must stop reading the client rather than buffer the rest in memory.
      c.socket.pause();
      c.socket.end(payload);
      await tick(300);
      expect(c.socket.writableLength).toBeGreaterThan(0);
      c.socket.resume();
      await c.ended;
      const hash = (b: Buffer) => createHash('sha256').update(b).digest('hex');
      expect(hash(Buffer.concat(chunks))).toBe(hash(payload));
      const stats = h.dp.services()[0]!.servers[0]!;
      expect(stats.inBytes).toBe(payload.length);
      expect(stats.outBytes).toBe(payload.length);
      expectRelayed(h);
    },
  );

  it('half-close after an exchange: the client ends its side and still reads what the server sends later', async () => {
    const got: string[] = [];
    const late = createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', (d) => {
        got.push(d.toString());
        s.write('hi');
      });
      s.on('end', () => setTimeout(() => s.end('late reply'), 100));
    });
    servers.push(late);
    const port = await listen(late);
    h = await harness([{ name: 'hc', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }]);
    const c = await openClient(h.port);
    c.socket.write('hello');
    await c.waitBytes(2);
    c.socket.write('more');
    await c.waitBytes(4);
    c.socket.end();
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'CLOSE_WAIT'), 'CLOSE_WAIT');
    await c.ended;
    expect(c.received()).toBe('hihilate reply');
    expect(got.join('')).toBe('hellomore');
    expect((await c.closed).error).toBeUndefined();
    await waitFor(() => h!.dp.connections().every((e) => e.state === 'TIME_WAIT'), 'TIME_WAIT');
    expect(h.dp.services()[0]!.servers[0]).toMatchObject({ inBytes: 9, outBytes: 14 });
    expectRelayed(h);
  });

  it('half-close after an exchange: the server ends its side first and still reads what the client sends', async () => {
    const got: string[] = [];
    const early = createServer({ allowHalfOpen: true }, (s) => {
      s.once('data', () => {
        s.write('hi');
        setTimeout(() => s.end('bye'), 50);
      });
      s.on('data', (d) => got.push(d.toString()));
    });
    servers.push(early);
    const port = await listen(early);
    h = await harness([{ name: 'hc', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }]);
    const c = await openClient(h.port);
    c.socket.write('hello');
    await c.ended;
    expect(c.received()).toBe('hibye');
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'FIN_WAIT'), 'FIN_WAIT');
    c.socket.end('after your FIN');
    await waitFor(() => got.join('') === 'helloafter your FIN', 'the bytes sent after the server FIN');
    expect((await c.closed).error).toBeUndefined();
    await waitFor(() => h!.dp.connections().every((e) => e.state === 'TIME_WAIT'), 'TIME_WAIT');
    expectRelayed(h);
  });

  it('half-close: the client ends its side and still reads what the server sends later (CLOSE_WAIT)', async () => {
    const late = createServer({ allowHalfOpen: true }, (s) => {
      s.on('data', () => {});
      s.on('end', () => setTimeout(() => s.end('late reply'), 100));
    });
    servers.push(late);
    const port = await listen(late);
    h = await harness([{ name: 'hc', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }]);
    const c = await openClient(h.port);
    c.socket.end('request');
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'CLOSE_WAIT'), 'CLOSE_WAIT');
    await c.ended;
    expect(c.received()).toBe('late reply');
    expect((await c.closed).error).toBeUndefined();
  });

  it('half-close: the server ends its side first and still reads what the client sends (FIN_WAIT)', async () => {
    const got: string[] = [];
    const early = createServer({ allowHalfOpen: true }, (s) => {
      s.end('bye');
      s.on('data', (d) => got.push(d.toString()));
    });
    servers.push(early);
    const port = await listen(early);
    h = await harness([{ name: 'hc', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }]);
    const c = await openClient(h.port);
    await c.ended;
    expect(c.received()).toBe('bye');
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'FIN_WAIT'), 'FIN_WAIT');
    c.socket.end('after your FIN');
    await waitFor(() => got.join('') === 'after your FIN', 'the bytes sent after the server FIN');
    await c.closed;
    await waitFor(() => h!.dp.connections().every((e) => e.state === 'TIME_WAIT'), 'TIME_WAIT');
  });

  it('propagates a server reset (after it answered) to the client', async () => {
    const rst = createServer((s) => {
      s.on('error', () => {});
      s.once('data', () => {
        s.write('partial');
        setTimeout(() => s.resetAndDestroy(), 50);
      });
    });
    servers.push(rst);
    const port = await listen(rst);
    h = await harness([{ name: 'r', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }]);
    const r = await request(h.port, 'go', { end: false });
    expect(r.data).toBe('partial');
    expect(r.error).toBe('ECONNRESET');
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'CLOSE'), 'CLOSE state');
    expectRelayed(h);
  });

  it('propagates a client reset to the server', async () => {
    backends = [await tcpBackend('e', 'echo')];
    h = await harness([{ name: 'r', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }]);
    const c = await openClient(h.port);
    c.socket.write('ping');
    await c.waitBytes(4);
    c.socket.resetAndDestroy();
    await waitFor(() => backends[0]!.errors.includes('ECONNRESET'), 'the server to see the reset');
    await waitFor(() => h!.dp.connections().every((e) => e.state === 'CLOSE'), 'CLOSE state');
    expectRelayed(h);
  });

  it('counts ActiveConn/InActConn per server and lists connections as ipvsadm -lnc does', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
      {
        options: { timeouts: { timeWait: '10s' } },
      },
    );
    const clients = [];
    for (let i = 0; i < 3; i++) {
      const c = await openClient(h.port);
      c.socket.write('x');
      await c.waitBytes(1);
      clients.push(c);
    }
    const [a, b] = backends.map((x) => x!.address);
    expect(counts(h.dp, 'web')).toEqual({
      [a!]: { active: 2, inactive: 0 },
      [b!]: { active: 1, inactive: 0 },
    });
    const rows = h.dp.connections();
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row).toMatchObject({
        protocol: 'TCP',
        state: 'ESTABLISHED',
        virtual: `127.0.0.1:${h.port}`,
        service: 'web',
      });
      expect(row.client).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(row.local).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(row.expiresInMs).toBe(15 * 60_000);
    }
    clients[0]!.socket.end();
    await clients[0]!.closed;
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'TIME_WAIT'), 'TIME_WAIT');
    expect(counts(h.dp, 'web')[a!]).toEqual({ active: 1, inactive: 1 });
    await h.advance(11_000);
    expect(h.dp.connections()).toHaveLength(2);
    expect(counts(h.dp, 'web')[a!]).toEqual({ active: 1, inactive: 0 });
    for (const c of clients.slice(1)) c.socket.end();
    await Promise.all(clients.slice(1).map((c) => c.closed));
    await h.advance(11_000);
    expect(h.dp.size).toBe(0);
    expectRelayed(h, 3);
  });

  it('expires an idle ESTABLISHED connection at timeouts.tcp and a half-closed one at timeouts.tcpFin', async () => {
    backends = [await tcpBackend('s', 'silent')];
    h = await harness([{ name: 'idle', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }], {
      options: { timeouts: { tcp: '60s', tcpFin: '10s' } },
    });
    // A client that sends and then says nothing more, and one that half-closes and never reads.
    const quiet = await openClient(h.port);
    quiet.socket.write('hello?');
    const halfOpen = await openClient(h.port);
    halfOpen.socket.end('bye');
    await waitFor(
      () => h!.dp.connections().filter((e) => e.state === 'ESTABLISHED').length === 1,
      'one ESTABLISHED',
    );
    await waitFor(() => h!.dp.connections().some((e) => e.state === 'CLOSE_WAIT'), 'one CLOSE_WAIT');
    await h.advance(11_000);
    await halfOpen.closed;
    expect(h.dp.connections().map((e) => e.state)).toEqual(['ESTABLISHED']);
    await h.advance(50_000);
    await quiet.ended; // the balancer's FIN (the client itself allows half-open)
    await tick();
    expect(h.dp.size).toBe(0);
  });

  it('serves IPv6: a VIP on [::1] to servers on [::1], with the client address in the table', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'name', '::1')));
    const port = await freePort('::1');
    h = await harness([
      {
        name: 'v6',
        listen: `[::1]:${port}`,
        scheduler: 'rr',
        realServers: backends.map((b) => ({ address: `[::1]:${b.port}` })),
      },
    ]);
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push((await request(port, 'x', { host: '::1' })).data);
    expect(answers).toEqual(['a', 'b', 'a', 'b']);
    const rows = h.dp.connections();
    expect(rows[0]!.client).toMatch(/^\[::1\]:\d+$/);
    expect(rows[0]!.virtual).toBe(`[::1]:${port}`);
    const [a, b] = backends.map((x) => `[::1]:${x.port}`);
    expect(rows.map((r) => r.server).sort()).toEqual([a, a, b, b].sort());
  });
});
