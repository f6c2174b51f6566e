import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { proxyProtocolPassthrough } from '@fulcrum/proxy-protocol';
import { exhaustDescriptors, requires } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeRelayUnavailable } from '../index.js';
import {
  freePort,
  harness,
  openClient,
  relayOptions,
  request,
  tick,
  waitFor,
  type Harness,
} from './helpers.js';

// What only the native relay with native accept does: its listening sockets are the
// relay's own (no libuv handle), so it must keep the process alive itself, and it answers
// running out of descriptors with spare descriptors of its own.

const root = fileURLToPath(new URL('../../../../', import.meta.url));
const addonPath = fileURLToPath(new URL('../../build/Release/fulcrum_relay.node', import.meta.url));
const built = ['kernel', 'dataplane-socket', 'scheduler-rr'].map((p) => `${root}packages/${p}/dist/index.js`);

const need = requires({
  commands: ['prlimit'],
  check: () =>
    nativeRelayUnavailable() ??
    (built.every((f) => existsSync(f))
      ? undefined
      : 'needs the built packages (npm run build): a child process runs dist/'),
});

let h: Harness | undefined;
const children: ChildProcess[] = [];

afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill();
});

/** A backend in a child process (its descriptors are not the balancer's): answers "ok" to anything. */
async function childBackend(): Promise<number> {
  const backend = spawn(process.execPath, [
    '-e',
    `require('net').createServer((s) => { s.on('error', () => {}); s.on('data', () => s.end('ok')); }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`,
  ]);
  children.push(backend);
  return new Promise<number>((r) => backend.stdout!.once('data', (d: Buffer) => r(Number(d.toString()))));
}

describe.skipIf(need.skip)('native relay, native accept' + need.note, () => {
  it('a listener keeps the process alive, and the process exits by itself once the kernel closes', async () => {
    // Nothing but the dataplane's sockets holds the child's event loop (its clock's timers
    // are unref'd, so the sweep timer does not): without the relay's reference for its
    // listener, the child would exit right after apply().
    const child = spawn(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `
        import { createKernel } from '@fulcrum/kernel';
        import socket from '@fulcrum/dataplane-socket';
        import rr from '@fulcrum/scheduler-rr';
        import { createServer } from 'node:net';
        const free = () => new Promise((r) => { const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => r(p)); }); });
        const port = await free();
        const unref = (t) => (t.unref(), t);
        const clock = {
          now: () => performance.now(),
          setTimeout: (fn, ms) => { const t = unref(setTimeout(fn, ms)); return { cancel: () => clearTimeout(t) }; },
          setInterval: (fn, ms) => { const t = unref(setInterval(fn, ms)); return { cancel: () => clearInterval(t) }; },
        };
        const kernel = createKernel({ plugins: [socket, rr], clock });
        await kernel.apply({
          dataplane: { name: 'socket', options: ${JSON.stringify(relayOptions('native'))} },
          services: [{ name: 'web', listen: '127.0.0.1:' + port, scheduler: 'rr', realServers: [{ address: '127.0.0.1:' + process.env.BACKEND }] }],
        });
        if (kernel.dataplane.relayInfo().accepts !== true) throw new Error('not native accept');
        process.on('SIGUSR2', () => kernel.close().then(() => console.log('closed')));
        console.log(port);
        `,
      ],
      { cwd: root, env: { ...process.env, BACKEND: String(await childBackend()) } },
    );
    children.push(child);
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => (out += d));
    child.stderr!.on('data', (d: Buffer) => (err += d));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await waitFor(() => /^\d+\n/.test(out) || child.exitCode !== null, 'the child to listen', 15_000);
    expect(err).toBe('');
    const port = Number(out.trim());
    await tick(500);
    expect(child.exitCode).toBeNull();
    expect((await request(port)).data).toBe('ok');
    expect(child.exitCode).toBeNull();
    child.kill('SIGUSR2');
    expect(await exited).toBe(0);
    expect(out).toContain('closed');
  }, 30_000);

  it('out of descriptors: an accept failing with EMFILE is counted, and the spare descriptor still connects the client after the one it accepted took the last', async () => {
    const backendPort = await childBackend();
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${backendPort}` }] }],
      {
        options: { ...relayOptions('native'), timeouts: { timeWait: 0 } },
      },
    );
    expect((await request(h.port)).data).toBe('ok');
    await waitFor(() => h!.dp.size === 0, 'an empty table');
    // The client runs in a child started first (a process with no descriptor left cannot
    // spawn one), which connects once per line it reads on stdin and prints how it went.
    const client = spawn(
      process.execPath,
      [
        '-e',
        `
      const net = require('net');
      require('readline').createInterface({ input: process.stdin }).on('line', () => {
        const s = net.connect(Number(process.env.PORT), '127.0.0.1');
        let data = '', err;
        s.on('data', (d) => (data += d));
        s.on('error', (e) => (err = e.code));
        s.on('close', () => console.log(data === 'ok' ? 'ok' : err ?? 'closed'));
        s.end('x');
      });`,
      ],
      { env: { ...process.env, PORT: String(h.port) } },
    );
    children.push(client);
    const lines: string[] = [];
    let buffered = '';
    client.stdout!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop()!;
      lines.push(...parts);
    });
    const connect = async (): Promise<string> => {
      const before = lines.length;
      client.stdin!.write('go\n');
      await waitFor(() => lines.length > before, 'the client to finish');
      return lines[before]!;
    };
    expect(await connect()).toBe('ok'); // the child is up, with descriptors of its own
    const results: string[] = [];
    // First no descriptor left at all, so accept(2) fails; then exactly one, which the
    // accepted client takes, leaving none for the socket toward the server but the relay's spare.
    const squeeze = exhaustDescriptors();
    try {
      results.push(await connect());
      squeeze.release(1);
      results.push(await connect());
    } finally {
      squeeze.restore();
    }
    // No descriptor to accept with: the relay accepted that client with its reserved one and
    // closed it, and said so.
    expect(results[0]).not.toBe('ok');
    h.dp.services();
    const acceptErrors = (
      await h.kernel.metrics.registry.getSingleMetric('fulcrum_accept_errors_total')!.get()
    ).values;
    expect(acceptErrors).toContainEqual(
      expect.objectContaining({ labels: { service: 'web', code: 'EMFILE' }, value: expect.any(Number) }),
    );
    expect(acceptErrors.find((v) => v.labels.code === 'EMFILE')!.value).toBeGreaterThanOrEqual(1);
    // One descriptor: the client took it, and the server socket came from the spare.
    expect(results[1]).toBe('ok');
    const localErrors = (await h.kernel.metrics.registry.getSingleMetric('fulcrum_local_errors_total')!.get())
      .values;
    expect(localErrors.filter((v) => v.value > 0)).toEqual([]);
    // The spare comes back once descriptors are free again, and serving goes on.
    expect((await request(h.port)).data).toBe('ok');
    expect((await request(h.port)).data).toBe('ok');
    await waitFor(() => h!.dp.size === 0, 'an empty table');
  }, 30_000);
});

// The relay threads wake the event loop with a libuv async handle of the addon's own; its
// callback must behave as any I/O callback of Node's.
describe.skipIf(!!nativeRelayUnavailable())(
  'native relay, waking the event loop' +
    (nativeRelayUnavailable() ? ` (skipped: ${nativeRelayUnavailable()})` : ''),
  () => {
    const settings = {
      threads: 1,
      splice: false,
      acceptLocal: false,
      noDelay: true,
      replayLimit: 0,
      earlyLimit: 65536,
    };

    it('what the records callback throws is an uncaught exception of the process', async () => {
      const port = await freePort();
      const child = spawn(process.execPath, [
        '-e',
        `
      const { Relay } = require(${JSON.stringify(addonPath)});
      process.on('uncaughtException', (e) => { console.log('uncaught: ' + e.message); relay.stop(); process.exit(0); });
      const relay = new Relay(${JSON.stringify(settings)}, () => {
        if (relay.poll(false).length > 0) throw new Error('thrown by onRecords');
      });
      if (relay.listen('127.0.0.1', ${port}, 16) < 0) process.exit(3);
      require('net').connect(${port}, '127.0.0.1').on('error', () => {});
      setTimeout(() => { console.log('not thrown'); process.exit(4); }, 5000).unref();
      `,
      ]);
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      expect(out).toBe('uncaught: thrown by onRecords\n');
      expect(code).toBe(0);
    }, 15_000);

    it('a worker thread that ends with its relay running, records on their way, ends cleanly, and the process goes on', async () => {
      // The environment is torn down while the threads still wake its loop: JavaScript
      // cannot run then, and the addon's code is unloaded before the loop's last turn.
      const port = await freePort();
      const child = spawn(process.execPath, [
        '--input-type=module',
        '-e',
        `
        import { Worker } from 'node:worker_threads';
        const code = \`
          const { Relay } = require(${JSON.stringify(JSON.stringify(addonPath)).slice(1, -1)});
          const net = require('net');
          const relay = new Relay(${JSON.stringify(JSON.stringify(settings)).slice(1, -1)}, () => relay.poll(false));
          if (relay.listen('127.0.0.1', ${port}, 64) < 0) process.exit(3);
          let open = 0;
          for (let i = 0; i < 20; i++)
            net.connect(${port}, '127.0.0.1').on('error', () => {}).on('connect', () => { if (++open === 20) process.exit(0); });
        \`;
        for (let i = 0; i < 4; i++) {
          const code_ = await new Promise((r) => new Worker(code, { eval: true, execArgv: [] }).on('exit', r));
          if (code_ !== 0) { console.log('worker exited with ' + code_); process.exit(1); }
        }
        console.log('done');
        `,
      ]);
      children.push(child);
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d));
      child.stderr!.on('data', (d: Buffer) => (out += d));
      const exit = await new Promise<[number | null, string | null]>((r) =>
        child.on('exit', (c, sig) => r([c, sig])),
      );
      expect(out).toBe('done\n');
      expect(exit).toEqual([0, null]);
    }, 20_000);
  },
);

// The connect toward the server leaves the handshake's last ACK to the first bytes it sends
// when it holds some already (the PROXY header, what the client sent before its server was
// connected): one segment less, and the server accepts and reads in one wake-up. Without
// such bytes the ACK must go at once: where the server speaks first, nothing else would
// carry it, and the server could not accept before the kernel's delayed ACK (200 ms).
const ackNeed = requires({ commands: ['ss'], check: () => nativeRelayUnavailable() });

/** Segments received so far by each established socket of the server on `serverPort` (ss -ti). */
function segsIn(serverPort: number): number[] {
  const out = execFileSync('ss', ['-tinH', 'state', 'established', `( sport = :${serverPort} )`], {
    encoding: 'utf8',
  });
  return [...out.matchAll(/\bsegs_in:(\d+)/g)].map((m) => Number(m[1]));
}

describe.skipIf(ackNeed.skip)('native relay, the handshake toward the server' + ackNeed.note, () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  /** A server on loopback; `onConnection` gets each socket (destroyed after the test). */
  async function server(onConnection: (s: Socket) => void): Promise<number> {
    const srv = createServer((s) => {
      sockets.push(s);
      s.on('error', () => {});
      onConnection(s);
    });
    servers.push(srv);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    return (srv.address() as AddressInfo).port;
  }

  const withHeader = (port: number) =>
    harness(
      [
        {
          name: 'pp',
          scheduler: 'rr',
          passthrough: { name: 'proxy-protocol', options: { version: 1 } },
          realServers: [{ address: `127.0.0.1:${port}` }],
        },
      ],
      { options: relayOptions('native'), plugins: [proxyProtocolPassthrough], realClock: true },
    );

  /** How long each of five clients in a row waits for `bytes` bytes, sending `send` first. */
  async function fiveTimes(bytes: number, send?: string): Promise<number[]> {
    const took: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const c = await openClient(h!.port);
      sockets.push(c.socket);
      if (send) c.socket.write(send);
      await c.waitBytes(bytes);
      took.push(performance.now() - t0);
    }
    return took;
  }

  it('with a PROXY header to send, the handshake’s ACK comes in the header’s segment', async () => {
    let headers = 0;
    const port = await server((s) => s.once('data', () => headers++));
    h = await withHeader(port);
    // The clients send nothing: the header is all the relay has to send.
    for (let i = 0; i < 3; i++) sockets.push((await openClient(h.port)).socket);
    await waitFor(() => headers === 3, 'three headers at the server');
    // The server's sockets received the SYN and one segment with the ACK and the header
    // (three with the ACK on its own).
    expect(segsIn(port)).toEqual([2, 2, 2]);
  });

  it('then ACKs as usual: a server writing its answer in two pieces under Nagle does not wait for a delayed ACK', async () => {
    // Left in delayed-ACK mode after its held ACK, the relay's socket would ACK the first
    // piece only when the delayed-ACK timer fires (40 ms), and Nagle holds the second until then.
    const port = await server((s) => {
      s.setNoDelay(false);
      s.once('data', () => {
        s.write('a');
        setTimeout(() => s.write('b'), 1);
      });
    });
    h = await withHeader(port);
    const took = await fiveTimes(2, 'x');
    expect(Math.min(...took)).toBeLessThan(30);
  });

  it('a server that speaks first is accepted at once, the ACK not held for bytes that do not come', async () => {
    const port = await server((s) => s.end('hello\n'));
    h = await harness([{ name: 'first', scheduler: 'rr', realServers: [{ address: `127.0.0.1:${port}` }] }], {
      options: relayOptions('native'),
      realClock: true,
    });
    // A held ACK would go with the kernel's delayed-ACK timer, 200 ms later: each greeting
    // would take that long. Five in a row, so that one stall of the machine cannot decide.
    const took = await fiveTimes(6);
    expect(h.dp.relayInfo().picked).toBe(5);
    expect(Math.min(...took)).toBeLessThan(100);
  });
});
