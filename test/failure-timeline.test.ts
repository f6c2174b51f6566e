import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createKernel, type Kernel } from '@fulcrum/kernel';
import socket from '@fulcrum/dataplane-socket';
import wrr from '@fulcrum/scheduler-wrr';
import passive from '@fulcrum/healthcheck-passive';
import http from '@fulcrum/healthcheck-http';
import { afterEach, describe, expect, it } from 'vitest';

// The seed scenario (shared/seeds/000): three HTTP backends behind wrr with passive checks,
// a steady client, backend 0 stopped. DPVS loses a client request every time the passive
// check probes the dead server after an inhibit period (10, 16, 26, 47, 89 s). Fulcrum's
// dataplane retries a refused connect on another server, so the probe costs no request.
// Time is compressed (inhibit from 200 ms) so the timeline fits a test; the logic is the same.

const servers: Server[] = [];
let kernel: Kernel | undefined;
afterEach(async () => {
  await kernel?.close();
  kernel = undefined;
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/** A backend answering its own name; restartable on the same port. */
async function backend(
  name: string,
  port = 0,
): Promise<{ port: number; server: Server; stop: () => Promise<void> }> {
  const server = createServer((req, res) => res.end(name));
  server.keepAliveTimeout = 1;
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  servers.push(server);
  const stop = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
      servers.splice(servers.indexOf(server), 1);
    });
  return { port: (server.address() as AddressInfo).port, server, stop };
}

/** One request on a fresh connection (as the seed's client): the backend's name, or the error. */
async function request(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, {
      headers: { connection: 'close' },
      signal: AbortSignal.timeout(2000),
    });
    return await res.text();
  } catch (e) {
    return `FAILED: ${(e as Error).cause ? String((e as { cause: unknown }).cause) : (e as Error).message}`;
  }
}

async function run(vip: number, count: number, everyMs: number, answers: string[]): Promise<void> {
  for (let i = 0; i < count; i++) {
    answers.push(await request(vip));
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

describe('the failure timeline that must be better than DPVS', () => {
  it('passive checking: zero failed requests, nothing to the dead server, back within one inhibit period', async () => {
    const b = await Promise.all(['b0', 'b1', 'b2'].map((n) => backend(n)));
    const vip = await freePort();
    kernel = createKernel({ plugins: [socket, wrr, passive] });
    await kernel.apply({
      dataplane: { name: 'socket', options: { connectTimeout: '1s', retries: 2 } },
      services: [
        {
          name: 'web',
          listen: `127.0.0.1:${vip}`,
          scheduler: 'wrr',
          healthChecks: [
            { name: 'passive', options: { inhibitMin: '200ms', inhibitMax: '1600ms', downWait: '1s' } },
          ],
          realServers: b.map((x) => ({ address: `127.0.0.1:${x.port}` })),
        },
      ],
    });
    const inhibited: string[] = [];
    kernel.events.on('server:state', (e) => inhibited.push(`${e.server} ${e.health}`));

    const before: string[] = [];
    await run(vip, 12, 10, before);
    expect(new Set(before)).toEqual(new Set(['b0', 'b1', 'b2']));

    const port0 = b[0]!.port;
    await b[0]!.stop();
    const during: string[] = [];
    await run(vip, 150, 20, during); // ~3 s+: the inhibit timer fires at 0.2, 0.6, 1.4, 3.0 s …
    expect(during.filter((a) => a.startsWith('FAILED'))).toEqual([]);
    expect(during).not.toContain('b0');
    expect(new Set(during)).toEqual(new Set(['b1', 'b2']));
    expect(inhibited).toContain(`127.0.0.1:${port0} down`);
    // The passive state machine paid for the probes, not the client: each one was a retry.
    const text = await kernel.metrics.text();
    expect(text).toMatch(/^fulcrum_connection_retries_total\{[^}]*service="web"[^}]*\} [1-9]/m);

    await backend('b0', port0);
    const after: string[] = [];
    const started = Date.now();
    while (!after.includes('b0') && Date.now() - started < 4000) await run(vip, 1, 20, after);
    // Back within one inhibit period (at most inhibitMax = 1.6 s here) plus the request spacing.
    expect(after).toContain('b0');
    expect(Date.now() - started).toBeLessThan(1600 + 1000);
    expect(after.filter((a) => a.startsWith('FAILED'))).toEqual([]);
  }, 30_000);

  it('active HTTP checking: the dead server is out within fall × interval', async () => {
    const b = await Promise.all(['b0', 'b1'].map((n) => backend(n)));
    const vip = await freePort();
    kernel = createKernel({ plugins: [socket, wrr, http] });
    await kernel.apply({
      dataplane: 'socket',
      services: [
        {
          name: 'web',
          listen: `127.0.0.1:${vip}`,
          scheduler: 'wrr',
          healthChecks: [
            { name: 'http', options: { interval: '100ms', timeout: '100ms', fall: 2, rise: 1, warmup: 0 } },
          ],
          realServers: b.map((x) => ({ address: `127.0.0.1:${x.port}` })),
        },
      ],
    });
    await b[0]!.stop();
    const stoppedAt = Date.now();
    const down = await new Promise<number>((resolve) =>
      kernel!.events.on('server:state', (e) => e.health === 'down' && resolve(Date.now())),
    );
    // fall × interval = 200 ms, plus one probe's timeout and scheduling slack on a shared machine.
    expect(down - stoppedAt).toBeLessThan(2 * 100 + 100 + 400);
    expect(kernel.snapshot('web').realServers[0]!.weight).toBe(0);
    const answers: string[] = [];
    await run(vip, 10, 5, answers);
    expect(answers).toEqual(Array(10).fill('b1'));
  }, 30_000);
});
