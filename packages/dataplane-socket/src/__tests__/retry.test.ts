import { afterEach, describe, expect, it } from 'vitest';
import { requires } from '@fulcrum/testkit';
import {
  closeHarness,
  counts,
  freePort,
  hangingPort,
  harness,
  openClient,
  request,
  tcpBackend,
  tick,
  waitFor,
  type Backend,
  type Harness,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
  for (const c of cleanups.splice(0)) await c();
});

const metric = async (h: Harness, name: string) =>
  (await h.kernel.metrics.registry.getSingleMetric(name)!.get()).values;

describe.each(relayModes())(
  'a server that fails before answering is replaced without the client noticing (%s)',
  (_, mode) => {
    useRelay(mode);

    it('refused: retried on the next server, a failure signal for the refusing one', async () => {
      // The backends first: a port freePort() found free could be given to one of them.
      backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n)));
      const dead = `127.0.0.1:${await freePort()}`;
      h = await harness(
        [
          {
            name: 'web',
            scheduler: 'rr',
            realServers: [{ address: dead }, ...backends.map((b) => ({ address: b.address }))],
          },
        ],
        {
          options: { timeouts: { timeWait: 0 } },
        },
      );
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) {
        const r = await request(h.port);
        expect(r.error).toBeUndefined();
        answers.push(r.data);
      }
      // rr walks dead, a, b, dead…: a retry takes the next turn of the sequence, as IPVS rr
      // moves past a server it cannot use.
      expect(answers).toEqual(['a', 'b', 'a', 'b', 'a', 'b']);
      const failed = h.events['health:signal']!.filter((s) => !s.ok);
      expect(failed).toHaveLength(3);
      expect(failed[0]).toMatchObject({ service: 'web', server: dead, ok: false });
      expect(failed[0]!.reason).toContain('refused');
      expect(h.events['connection:failed']!.map((f) => [f.server, f.reason, f.retried])).toEqual(
        Array(3).fill([dead, 'refused', true]),
      );
      expect(h.events['health:signal']!.filter((s) => s.ok).every((s) => s.server !== dead)).toBe(true);
      expect(await metric(h, 'fulcrum_connection_retries_total')).toEqual([
        { labels: { service: 'web', server: dead }, value: 3 },
      ]);
      expect(await metric(h, 'fulcrum_connection_failures_total')).toEqual([
        { labels: { service: 'web', server: dead, reason: 'refused' }, value: 3 },
      ]);
      await waitFor(() => h!.dp.size === 0, 'an empty table');
    });

    it('reset after accepting, before any byte came back: the client bytes are replayed to another server', async () => {
      const resetter = await tcpBackend('r', 'reset-on-data');
      const echo = await tcpBackend('e', 'echo');
      backends = [resetter, echo];
      h = await harness([
        { name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) },
      ]);
      const c = await openClient(h.port);
      c.socket.write('first bytes');
      await c.waitBytes(11);
      expect(c.received()).toBe('first bytes');
      c.socket.write(' and more');
      await c.waitBytes(20);
      expect(c.received()).toBe('first bytes and more');
      expect(Buffer.concat(resetter.received[0]!).toString()).toBe('first bytes');
      expect(h.events['connection:failed']).toEqual([
        {
          service: 'web',
          server: resetter.address,
          client: expect.any(String),
          reason: 'reset',
          retried: true,
        },
      ]);
      expect(h.dp.connections()).toMatchObject([{ state: 'ESTABLISHED', server: echo.address }]);
      c.socket.end();
      await c.closed;
    });

    it('gives up after `retries` more servers: the client gets a reset, counted as refused', async () => {
      const dead = await Promise.all([freePort(), freePort(), freePort()]);
      h = await harness(
        [{ name: 'web', scheduler: 'rr', realServers: dead.map((p) => ({ address: `127.0.0.1:${p}` })) }],
        {
          options: { retries: 1 },
        },
      );
      const r = await request(h.port, 'x', { end: false });
      expect(r.error).toBe('ECONNRESET');
      expect(r.data).toBe('');
      expect(h.events['connection:failed']!.map((f) => f.retried)).toEqual([true, false]);
      expect(await metric(h, 'fulcrum_connections_refused_total')).toEqual([
        { labels: { service: 'web', reason: 'retries-exhausted' }, value: 1 },
      ]);
      await waitFor(() => h!.dp.connections().every((e) => e.state === 'CLOSE'), 'CLOSE');
      await h.advance(10_000);
      expect(h.dp.size).toBe(0);
      expect(Object.values(counts(h.dp, 'web')).every((c) => c.active === 0 && c.inactive === 0)).toBe(true);
    });

    it('does not replay more than retryBufferBytes: past it, a reset reaches the client', async () => {
      const resetter = await tcpBackend('r', 'reset-on-data');
      const echo = await tcpBackend('e', 'echo');
      backends = [resetter, echo];
      h = await harness(
        [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
        {
          options: { retryBufferBytes: 4 },
        },
      );
      const r = await request(h.port, 'more than four bytes', { end: false });
      expect(r.error).toBe('ECONNRESET');
      // (The native relay resets the client first and reports it in its next batch.)
      await waitFor(() => h!.events['connection:failed'] !== undefined, 'the failure event');
      expect(h.events['connection:failed']).toMatchObject([
        { server: resetter.address, reason: 'reset', retried: false },
      ]);
      expect(echo.accepted).toBe(0);
    });

    it('retries with hash plans (sh) on the next server of the table, and with least-connections (wlc)', async () => {
      backends = [await tcpBackend('a')];
      const dead = `127.0.0.1:${await freePort()}`;
      for (const scheduler of ['sh', 'wlc']) {
        h = await harness([
          { name: 'web', scheduler, realServers: [{ address: dead }, { address: backends[0]!.address }] },
        ]);
        const answers = await Promise.all(Array.from({ length: 12 }, () => request(h!.port)));
        expect(answers.map((a) => a.data)).toEqual(Array(12).fill('a'));
        expect(h.events['connection:failed']?.length ?? 0).toBeGreaterThan(0);
        await h.close();
        h = undefined;
      }
    });

    it('times out a connect stuck in SYN_SENT at connectTimeout and retries elsewhere', async (ctx) => {
      const need = requires({ commands: ['python3'] });
      if (need.skip) return ctx.skip(need.reason);
      const hung = await hangingPort();
      cleanups.push(() => hung.close());
      backends = [await tcpBackend('a')];
      h = await harness(
        [
          {
            name: 'web',
            scheduler: 'rr',
            realServers: [{ address: `127.0.0.1:${hung.port}` }, { address: backends[0]!.address }],
          },
        ],
        {
          options: { connectTimeout: '3s' },
        },
      );
      const pending = request(h.port);
      await waitFor(() => h!.dp.connections().some((e) => e.state === 'SYN_SENT'), 'SYN_SENT');
      await h.advance(2000);
      expect(h.dp.connections()[0]!.state).toBe('SYN_SENT');
      await h.advance(2000);
      expect((await pending).data).toBe('a');
      expect(h.events['connection:failed']).toMatchObject([
        { server: `127.0.0.1:${hung.port}`, reason: 'timeout', retried: true },
      ]);
      expect(h.events['health:signal']!.find((s) => !s.ok)).toMatchObject({
        server: `127.0.0.1:${hung.port}`,
        reason: 'timeout',
      });
    });

    it('each attempt gets its own connectTimeout: a retry that hangs too is timed from its own start', async (ctx) => {
      const need = requires({ commands: ['python3'] });
      if (need.skip) return ctx.skip(need.reason);
      const hung = [await hangingPort(), await hangingPort()];
      for (const p of hung) cleanups.push(() => p.close());
      backends = [await tcpBackend('a')];
      const servers = [...hung.map((p) => `127.0.0.1:${p.port}`), backends[0]!.address];
      h = await harness(
        [{ name: 'web', scheduler: 'rr', realServers: servers.map((address) => ({ address })) }],
        {
          options: { connectTimeout: '3s' },
        },
      );
      const pending = request(h.port);
      await waitFor(() => h!.dp.connections().some((e) => e.state === 'SYN_SENT'), 'SYN_SENT');
      // The first attempt times out at 3 s (or at 4 s: the client's bytes count as activity
      // when the sweep sees them, so its idle clock may start a sweep later).
      await h.advance(4000);
      await waitFor(() => (h!.events['connection:failed']?.length ?? 0) === 1, 'the first timeout');
      // At most two seconds into the second attempt: still connecting to the second server.
      await h.advance(1000);
      expect(h.dp.connections()[0]).toMatchObject({ state: 'SYN_SENT', server: servers[1] });
      expect(h.events['connection:failed']).toHaveLength(1);
      await h.advance(3000);
      expect((await pending).data).toBe('a');
      expect(h.events['connection:failed']!.map((f) => [f.server, f.reason, f.retried])).toEqual([
        [servers[0], 'timeout', true],
        [servers[1], 'timeout', true],
      ]);
    });

    it('responseTimeout: a server that accepts and never answers is replaced, with the bytes replayed', async () => {
      const silent = await tcpBackend('s', 'silent');
      const echo = await tcpBackend('e', 'echo');
      backends = [silent, echo];
      h = await harness(
        [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
        {
          options: { responseTimeout: '2s' },
        },
      );
      const c = await openClient(h.port);
      c.socket.write('anyone?');
      await waitFor(() => silent.received[0]?.length === 1, 'the silent server to get the bytes');
      await h.advance(3000);
      await c.waitBytes(7);
      expect(c.received()).toBe('anyone?');
      expect(h.events['connection:failed']).toMatchObject([
        { server: silent.address, reason: 'timeout', retried: true },
      ]);
      // Without responseTimeout the same server just holds the connection (idle timeouts apply).
      c.socket.end();
      await c.closed;
    });

    it('a client that resets while its server is being connected cancels the connect', async (ctx) => {
      const need = requires({ commands: ['python3'] });
      if (need.skip) return ctx.skip(need.reason);
      const hung = await hangingPort();
      cleanups.push(() => hung.close());
      h = await harness(
        [{ name: 'web', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${hung.port}` }] }],
        {
          options: { timeouts: { timeWait: 0 } },
        },
      );
      const c = await openClient(h.port);
      await waitFor(() => h!.dp.connections().some((e) => e.state === 'SYN_SENT'), 'SYN_SENT');
      c.socket.resetAndDestroy();
      await waitFor(() => h!.dp.size === 0, 'an empty table');
      expect(h.events['connection:failed']).toBeUndefined();
      await tick();
    });
  },
);
