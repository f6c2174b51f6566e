import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createKernel } from '@fulcrum/kernel';
import rr from '@fulcrum/scheduler-rr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { socketDataplane } from '../index.js';
import { relayModes, relayOptions, type RelayMode } from './helpers.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(server: Server): Promise<number> {
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

async function balancer(stopGrace: string, relay: RelayMode) {
  const echo = createServer((c) => c.on('error', () => {}).pipe(c));
  const backend = await listen(echo);
  const probe = createServer();
  const vip = await listen(probe);
  await new Promise((r) => probe.close(r));
  servers.splice(servers.indexOf(probe), 1);
  const kernel = createKernel({ plugins: [socketDataplane, rr] });
  await kernel.apply({
    dataplane: { name: 'socket', options: { stopGrace, ...relayOptions(relay) } },
    services: [
      {
        name: 'echo',
        listen: `127.0.0.1:${vip}`,
        scheduler: 'rr',
        realServers: [{ address: `127.0.0.1:${backend}` }],
      },
    ],
  });
  return { kernel, vip };
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

const roundTrip = (s: Socket, text: string) =>
  new Promise<string>((resolve) => {
    s.once('data', (d) => resolve(d.toString()));
    s.write(text);
  });

describe.each(relayModes())('soft stop (stopGrace, %s)', (_, { relay, skip }) => {
  beforeEach((ctx) => {
    if (skip) ctx.skip();
  });

  it('closes listeners at once and lets established connections finish', async () => {
    const { kernel, vip } = await balancer('5s', relay);
    const client = await open(vip);
    expect(await roundTrip(client, 'before')).toBe('before');
    const started = Date.now();
    const stopped = kernel.close();
    await new Promise((r) => setTimeout(r, 100));
    await expect(open(vip)).rejects.toMatchObject({ code: 'ECONNREFUSED' }); // no new connection
    expect(await roundTrip(client, 'during')).toBe('during'); // the old one still works
    client.end();
    await stopped;
    expect(Date.now() - started).toBeLessThan(2000); // done when the connection is, not at 5 s
  });

  it('resets what is still open when the grace ends', async () => {
    const { kernel, vip } = await balancer('300ms', relay);
    const client = await open(vip);
    expect(await roundTrip(client, 'x')).toBe('x');
    const closed = new Promise<void>((r) => client.on('close', () => r()));
    client.on('error', () => {});
    const started = Date.now();
    await kernel.close();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(280);
    expect(took).toBeLessThan(3000);
    await closed;
  });
});
