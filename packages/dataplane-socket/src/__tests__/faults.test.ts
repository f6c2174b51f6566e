import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { createKernel } from '@fulcrum/kernel';
import rr from '@fulcrum/scheduler-rr';
import { exhaustDescriptors, requires } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { socketDataplane } from '../index.js';
import {
  closeHarness,
  freePort,
  harness,
  openClient,
  request,
  tcpBackend,
  udpAsk,
  udpClient,
  waitFor,
  type Backend,
  type Harness,
  type OpenClient,
  dataplaneConfig,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;
const servers: Server[] = [];
const children: ChildProcess[] = [];
const clients: OpenClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await closeHarness(h, backends);
  h = undefined;
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
  for (const c of children.splice(0)) if (c.exitCode === null && c.pid) process.kill(c.pid);
});

const occupy = async (port: number) => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', r));
  servers.push(s);
};
const metricValues = async (h: Harness, name: string) =>
  (await h.kernel.metrics.registry.getSingleMetric(name)!.get()).values;

describe.each(relayModes())('bad input and faults (%s)', (_, mode) => {
  useRelay(mode);

  it('a port in use rejects the whole change; every other service keeps serving as before', async () => {
    backends = [await tcpBackend('a', 'echo')];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }]);
    const c = await openClient(h.port);
    clients.push(c);
    c.socket.write('1');
    await c.waitBytes(1);
    const taken = await freePort();
    await occupy(taken);
    const before = h.kernel.snapshots();
    // The change removes "web" and adds two services, one on the busy port.
    const other = await freePort();
    const change = h.kernel.apply({
      dataplane: dataplaneConfig(),
      services: [
        {
          name: 'api',
          listen: `127.0.0.1:${other}`,
          scheduler: 'rr',
          realServers: [{ address: backends[0]!.address }],
        },
        {
          name: 'busy',
          listen: `127.0.0.1:${taken}`,
          scheduler: 'rr',
          realServers: [{ address: backends[0]!.address }],
        },
      ],
    });
    await expect(change).rejects.toMatchObject({ code: 'FULCRUM_DATAPLANE' });
    await expect(change).rejects.toThrow(/cannot listen on TCP 127\.0\.0\.1:\d+: EADDRINUSE/);
    expect(h.kernel.snapshots()).toEqual(before);
    expect(h.dp.services().map((s) => s.name)).toEqual(['web']);
    c.socket.write('2');
    await c.waitBytes(2);
    expect((await request(h.port, 'x')).data).toBe('x');
    // "api"'s port was bound during the attempt and released again.
    await occupy(other);
  });

  it('a port in use at the first apply fails it with the reason, and nothing is left bound', async () => {
    const taken = await freePort();
    await occupy(taken);
    const kernel = createKernel({ plugins: [socketDataplane, rr] });
    await expect(
      kernel.apply({ services: [{ name: 'web', listen: `127.0.0.1:${taken}`, scheduler: 'rr' }] }),
    ).rejects.toThrow(/EADDRINUSE.*already in use/);
    expect(kernel.dataplane).toBeUndefined();
  });

  it('a local address this host does not have is refused at apply, with the address and errno', async () => {
    backends = [await tcpBackend('a')];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: backends[0]!.address }] }]);
    await expect(
      h.apply([
        {
          name: 'web',
          scheduler: 'rr',
          localAddresses: ['192.0.2.55'],
          realServers: [{ address: backends[0]!.address }],
        },
      ]),
    ).rejects.toThrow(/local address 192\.0\.2\.55 cannot be used: EADDRNOTAVAIL/);
    expect((await request(h.port)).data).toBe('a');
  });

  it('connects from the FULLNAT local addresses in turn', async () => {
    backends = [await tcpBackend('a')];
    h = await harness([
      {
        name: 'web',
        scheduler: 'rr',
        localAddresses: ['127.0.0.2', '127.0.0.3'],
        realServers: [{ address: backends[0]!.address }],
      },
    ]);
    for (let i = 0; i < 4; i++) expect((await request(h.port)).data).toBe('a');
    expect(backends[0]!.peers).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.2', '127.0.0.3']);
    // The listing names the local side of live connections (read from the socket when listed).
    const c = await openClient(h.port);
    clients.push(c);
    c.socket.write('x');
    await c.waitBytes(1);
    expect(h.dp.connections().find((e) => e.local)?.local).toMatch(/^127\.0\.0\.2:\d+$/);
  });

  it('refuses connections beyond maxConnections with a reset, counts them, and admits again below it', async () => {
    backends = [await tcpBackend('a', 'echo')];
    h = await harness([
      { name: 'web', scheduler: 'rr', maxConnections: 3, realServers: [{ address: backends[0]!.address }] },
    ]);
    for (let i = 0; i < 3; i++) {
      const c = await openClient(h.port);
      c.socket.write('x');
      await c.waitBytes(1);
      clients.push(c);
    }
    const flood = await Promise.all(Array.from({ length: 20 }, () => request(h!.port, 'y', { end: false })));
    expect(flood.every((r) => r.error === 'ECONNRESET' && r.data === '')).toBe(true);
    expect(await metricValues(h, 'fulcrum_connections_refused_total')).toEqual([
      { labels: { service: 'web', reason: 'max-connections' }, value: 20 },
    ]);
    clients[0]!.socket.end();
    await clients[0]!.closed;
    // The client sees its close before the dataplane's table does (the native relay reports
    // ends in batches): admission counts what the table holds.
    await waitFor(() => h!.dp.services()[0]!.liveConns === 2, 'the closed connection to leave the table');
    expect((await request(h.port, 'z')).data).toBe('z');
    expect(h.dp.services()[0]!.liveConns).toBe(2);
  });

  it('refuses with a reset when no server can take the connection, and counts it', async () => {
    backends = [await tcpBackend('a')];
    h = await harness([
      { name: 'web', scheduler: 'rr', realServers: [{ address: backends[0]!.address, weight: 0 }] },
    ]);
    const r = await request(h.port, 'x', { end: false });
    expect(r.error).toBe('ECONNRESET');
    expect(await metricValues(h, 'fulcrum_connections_refused_total')).toEqual([
      { labels: { service: 'web', reason: 'no-server' }, value: 1 },
    ]);
    expect(h.dp.size).toBe(0);
  });

  it('out of file descriptors (EMFILE): drops what it must, counts it, never crashes, and serves again', async (ctx) => {
    const need = requires({ commands: ['prlimit'] });
    if (need.skip) return ctx.skip(need.reason);
    // Backend and clients run in child processes: only the balancer's descriptors are scarce.
    const backend = spawn(process.execPath, [
      '-e',
      `require('net').createServer((s) => { s.on('error', () => {}); s.on('data', () => s.end('ok')); }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`,
    ]);
    children.push(backend);
    const backendPort = await new Promise<number>((r) =>
      backend.stdout!.once('data', (d: Buffer) => r(Number(d.toString()))),
    );
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${backendPort}` }] }],
      { options: { timeouts: { timeWait: 0 } } },
    );
    // The flood runs in a child started first: a process with no descriptor left cannot spawn.
    const flood = spawn(
      process.execPath,
      [
        '-e',
        `
      const net = require('net');
      process.stdin.once('data', async () => {
        const one = () => new Promise((res) => {
          const s = net.connect(Number(process.env.PORT), '127.0.0.1');
          let data = '', err;
          s.on('data', (d) => (data += d));
          s.on('error', (e) => (err = e.code));
          s.on('close', () => res(data === 'ok' ? 'ok' : err ?? 'closed'));
          s.end('x');
        });
        const all = await Promise.all(Array.from({ length: 60 }, one));
        process.stdout.write(JSON.stringify(all), () => process.exit(0));
      });`,
      ],
      { env: { ...process.env, PORT: String(h.port) } },
    );
    children.push(flood);
    const out = new Promise<string[]>((r) => {
      let text = '';
      flood.stdout!.on('data', (d: Buffer) => (text += d));
      flood.on('exit', () => r(JSON.parse(text) as string[]));
    });
    // A handful of descriptors left: some of the flood gets through, the rest cannot.
    const squeeze = exhaustDescriptors();
    let results: string[];
    try {
      squeeze.release(6);
      flood.stdin!.write('go\n');
      results = await out;
    } finally {
      squeeze.restore();
    }
    expect(results).toContain('ok');
    // libuv answers EMFILE on accept with its "EMFILE trick" (accept and close with a reserved
    // descriptor), so those clients see a close and Node is never told; what Node does see
    // (connects toward servers that cannot get a descriptor) is counted as a local error.
    const failed = results.filter((r) => r !== 'ok');
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.every((r) => ['closed', 'ECONNRESET'].includes(r))).toBe(true);
    // Running out of descriptors is this host's problem, never the server's.
    expect((h.events['health:signal'] ?? []).filter((s) => !s.ok)).toEqual([]);
    expect((await request(h.port)).data).toBe('ok');
    await waitFor(() => h!.dp.size === 0, 'an empty table');
    expect(h.dp.services()[0]!.liveConns).toBe(0);
  });

  it('out of file descriptors for UDP sessions: counted as local errors, and serving resumes', async (ctx) => {
    const need = requires({ commands: ['prlimit'] });
    if (need.skip) return ctx.skip(need.reason);
    const backend = spawn(process.execPath, [
      '-e',
      `const s = require('dgram').createSocket('udp4'); s.on('message', (m, r) => s.send('ok', r.port, r.address)); s.bind(0, '127.0.0.1', () => console.log(s.address().port));`,
    ]);
    children.push(backend);
    const backendPort = await new Promise<number>((r) =>
      backend.stdout!.once('data', (d: Buffer) => r(Number(d.toString()))),
    );
    h = await harness([
      {
        name: 'dns',
        protocol: 'udp',
        scheduler: 'rr',
        realServers: [{ address: `127.0.0.1:${backendPort}` }],
      },
    ]);
    const flood = spawn(
      process.execPath,
      [
        '-e',
        `
      const dgram = require('dgram');
      process.stdin.once('data', async () => {
        const one = () => new Promise((res) => {
          const s = dgram.createSocket('udp4');
          const t = setTimeout(() => (s.close(), res('timeout')), 1500);
          s.on('message', () => (clearTimeout(t), s.close(), res('ok')));
          s.send('q', Number(process.env.PORT), '127.0.0.1');
        });
        const all = await Promise.all(Array.from({ length: 20 }, one));
        process.stdout.write(JSON.stringify(all), () => process.exit(0));
      });`,
      ],
      { env: { ...process.env, PORT: String(h.port) } },
    );
    children.push(flood);
    const out = new Promise<string[]>((r) => {
      let text = '';
      flood.stdout!.on('data', (d: Buffer) => (text += d));
      flood.on('exit', () => r(JSON.parse(text) as string[]));
    });
    // A handful of descriptors left: some of the flood gets through, the rest cannot.
    const squeeze = exhaustDescriptors();
    let results: string[];
    try {
      squeeze.release(3);
      flood.stdin!.write('go\n');
      results = await out;
    } finally {
      squeeze.restore();
    }
    expect(results).toContain('ok');
    expect(results).toContain('timeout');
    const local = await metricValues(h, 'fulcrum_local_errors_total');
    expect(local).toEqual([
      { labels: { service: 'dns', code: 'EMFILE' }, value: results.filter((r) => r === 'timeout').length },
    ]);
    expect((h.events['health:signal'] ?? []).filter((s) => !s.ok)).toEqual([]);
    await h.advance(6 * 60_000, 60_000);
    expect(h.dp.size).toBe(0);
    const c = await udpClient();
    expect((await udpAsk(c, h.port, 'again'))?.data).toBe('ok');
    c.close();
  });
});
