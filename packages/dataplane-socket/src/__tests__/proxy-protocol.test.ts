import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { definePassthrough } from '@fulcrum/kernel';
import { decodeProxyHeader, proxyProtocolPassthrough } from '@fulcrum/proxy-protocol';
import { requires } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  freePort,
  harness,
  openClient,
  tcpBackend,
  udpAsk,
  udpBackend,
  udpClient,
  waitFor,
  type Backend,
  type Harness,
  type UdpBackend,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: (Backend | UdpBackend)[] = [];
let h: Harness | undefined;
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
  for (const c of cleanups.splice(0)) await c();
});

const withPp = (version: 1 | 2, servers: string[], extra: Record<string, unknown> = {}) => ({
  name: 'pp',
  scheduler: 'rr',
  passthrough: { name: 'proxy-protocol', options: { version } },
  realServers: servers.map((address) => ({ address })),
  ...extra,
});

describe.each(relayModes())('client address to the server: PROXY protocol (%s)', (_, mode) => {
  useRelay(mode);

  for (const version of [1, 2] as const) {
    it(`TCP, v${version}: the header comes first, with the client and the VIP, then the client bytes`, async () => {
      const echo = await tcpBackend('e', 'echo');
      backends = [echo];
      h = await harness([withPp(version, [echo.address])], { plugins: [proxyProtocolPassthrough] });
      const c = await openClient(h.port);
      const clientPort = c.socket.localPort;
      c.socket.end('payload');
      await c.ended;
      const { header, rest } = decodeProxyHeader(Buffer.concat(echo.received[0]!));
      expect(header).toMatchObject({ version, command: 'proxy', transport: 'stream' });
      expect(header.source).toEqual({ address: '127.0.0.1', port: clientPort });
      expect(header.destination).toEqual({ address: '127.0.0.1', port: h.port });
      expect(rest.toString()).toBe('payload');
      // The echo sends the header back too: what the client reads is exactly what the server got.
      expect(c.received().endsWith('payload')).toBe(true);
    });
  }

  it('a retried connection sends the header again to the next server, then the replayed bytes', async () => {
    const resetter = await tcpBackend('r', 'reset-on-data');
    const echo = await tcpBackend('e', 'echo');
    backends = [resetter, echo];
    h = await harness([withPp(2, [resetter.address, echo.address])], { plugins: [proxyProtocolPassthrough] });
    const c = await openClient(h.port);
    c.socket.write('hello');
    await waitFor(
      () => echo.received.length === 1 && Buffer.concat(echo.received[0]!).toString().endsWith('hello'),
      'the replay',
    );
    const { header, rest } = decodeProxyHeader(Buffer.concat(echo.received[0]!));
    expect(header.source).toEqual({ address: '127.0.0.1', port: c.socket.localPort });
    expect(rest.toString()).toBe('hello');
    c.socket.destroy();
  });

  it('UDP: a v2 header in front of each datagram', async () => {
    const raw = await udpBackend('u', { silent: true });
    backends = [raw];
    h = await harness([withPp(2, [raw.address], { protocol: 'udp' })], {
      plugins: [proxyProtocolPassthrough],
    });
    const c = await udpClient();
    cleanups.push(() => c.close());
    const received: Buffer[] = [];
    raw.socket.on('message', (m) => received.push(m));
    await udpAsk(c, h.port, 'one', 50);
    await udpAsk(c, h.port, 'two', 50);
    await waitFor(() => received.length === 2, 'two datagrams');
    for (const [i, m] of received.entries()) {
      const { header, rest } = decodeProxyHeader(m);
      expect(header).toMatchObject({
        version: 2,
        transport: 'dgram',
        source: { address: '127.0.0.1', port: c.address().port },
      });
      expect(rest.toString()).toBe(['one', 'two'][i]);
    }
  });

  it('TOA is refused on this dataplane, with what to use instead', async () => {
    const toa = definePassthrough({
      name: 'toa',
      kernel: '^0.1.0',
      requires: ['toa'],
      optionsSchema: { type: 'object' },
      create: () => ({ settings: {} }),
    });
    const a = await tcpBackend('a');
    backends = [a];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a.address }] }], {
      plugins: [toa],
    });
    const change = h.apply([
      { name: 'web', scheduler: 'rr', passthrough: 'toa', realServers: [{ address: a.address }] },
    ]);
    await expect(change).rejects.toMatchObject({ code: 'FULCRUM_CAPABILITY' });
    await expect(change).rejects.toThrow(/"toa" capability.*PROXY protocol/);
  });

  it('SYNPROXY is refused on this dataplane, with what to use instead', async () => {
    const a = await tcpBackend('a');
    backends = [a];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a.address }] }]);
    const change = h.apply([
      { name: 'web', scheduler: 'rr', synproxy: true, realServers: [{ address: a.address }] },
    ]);
    await expect(change).rejects.toMatchObject({ code: 'FULCRUM_CAPABILITY' });
    await expect(change).rejects.toThrow(/"synproxy" capability.*use the dpdk dataplane/);
  });

  const haproxy = requires({ commands: ['haproxy'] });
  it.skipIf(haproxy.skip)(
    `HAProxy (accept-proxy) reads the client address from our header${haproxy.note}`,
    async () => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), 'fulcrum-pp-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      const cfg = join(dir, 'haproxy.cfg');
      writeFileSync(
        cfg,
        [
          'defaults',
          '  mode http',
          '  timeout connect 2s',
          '  timeout client 5s',
          '  timeout server 5s',
          'frontend fe',
          `  bind 127.0.0.1:${port} accept-proxy`,
          '  http-request return status 200 content-type text/plain lf-string "%[src]:%[src_port]"',
          '',
        ].join('\n'),
      );
      const proc: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: 'ignore' });
      cleanups.push(() => proc.pid && proc.exitCode === null && process.kill(proc.pid));
      // HAProxy is ready when its port accepts: wait for that (bounded) instead of probing with
      // requests, which under load could spend the whole test timeout while it starts.
      const listening = () =>
        new Promise<boolean>((resolve) => {
          const s = connect(port, '127.0.0.1');
          s.on('connect', () => (s.destroy(), resolve(true)));
          s.on('error', () => resolve(false));
        });
      for (let i = 0; i < 200 && !(await listening()); i++) {
        if (proc.exitCode !== null) throw new Error(`haproxy exited with ${proc.exitCode}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const version of [1, 2] as const) {
        h = await harness([withPp(version, [`127.0.0.1:${port}`])], { plugins: [proxyProtocolPassthrough] });
        let answer = '';
        let local = 0;
        for (let i = 0; i < 20 && !answer.includes('HTTP/1.1 200'); i++) {
          await new Promise((r) => setTimeout(r, 50));
          const c = await openClient(h.port);
          local = c.socket.localPort!;
          c.socket.end('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          await c.closed; // a reset while HAProxy is still starting, else its answer and FIN
          answer = c.received();
          c.socket.destroy();
        }
        expect(answer).toContain('HTTP/1.1 200');
        expect(answer.endsWith(`127.0.0.1:${local}`)).toBe(true);
        await h.close();
        h = undefined;
      }
    },
    60_000,
  );
});
