import { createKernel, defineScheduler } from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import http from '../index.js';

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (view) => ({
      kind: 'sequence',
      sequence: view.realServers.filter((s) => s.weight > 0).map((s) => s.index),
    }),
  }),
});

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function backend() {
  const sockets = new Set<Socket>();
  const server: Server = createServer((_req, res) => res.end('ok'));
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const stop = () => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => (server.listening ? server.close(() => r()) : r()));
  };
  cleanup.push(stop);
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, stop };
}

describe('http through the kernel: a dead server is out within fall × interval', () => {
  it('three backends, one stopped: weight 0 in the dataplane within fall × interval (+ one attempt)', async () => {
    const backends = [await backend(), await backend(), await backend()];
    const md = createMemoryDataplane();
    const kernel = createKernel({ plugins: [rr, md.plugin, http] });
    cleanup.push(() => kernel.close());
    const interval = 100;
    const fall = 3;
    await kernel.apply({
      dataplane: 'memory',
      services: [
        {
          name: 'web',
          listen: '127.0.0.1:8080',
          scheduler: 'rr',
          healthChecks: [
            {
              name: 'http',
              options: { path: '/', interval: `${interval}ms`, timeout: '200ms', fall, warmup: 0 },
            },
          ],
          realServers: backends.map((b) => ({ address: b.address })),
        },
      ],
    });
    await new Promise((r) => setTimeout(r, 2 * interval));
    const down = new Promise<{ server: string; reason: string }>((resolve) =>
      kernel.events.on('server:health', (e) => e.health === 'down' && resolve(e)),
    );
    const stoppedAt = performance.now();
    await backends[0]!.stop();
    const e = await down;
    const took = performance.now() - stoppedAt;
    expect(e.server).toBe(backends[0]!.address);
    expect(e.reason).toMatch(/ECONNREFUSED .*\(3 checks in a row\)/);
    // the first failing check starts within one interval of the stop; then fall - 1 more
    expect(took).toBeLessThan(fall * interval + 300);
    await new Promise((r) => setTimeout(r, 20));
    const snap = md.state.services.get('web')!.snapshot;
    expect(snap.realServers.map((s) => s.weight)).toEqual([0, 1, 1]);
    for (let i = 0; i < 30; i++) expect(md.connect('web')!.server).not.toBe(backends[0]!.address);
  });
});
