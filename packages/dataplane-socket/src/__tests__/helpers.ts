import { spawn } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  createKernel,
  ManualClock,
  type AnyPlugin,
  type Clock,
  type ConfigInput,
  type FulcrumEventMap,
  type FulcrumEventName,
  type Kernel,
  type ServiceInput,
} from '@fulcrum/kernel';
import rr from '@fulcrum/scheduler-rr';
import sh from '@fulcrum/scheduler-sh';
import wlc from '@fulcrum/scheduler-wlc';
import wrr from '@fulcrum/scheduler-wrr';
import { requires } from '@fulcrum/testkit';
import { beforeEach, expect } from 'vitest';
import {
  isSocketDataplane,
  nativeRelayUnavailable,
  socketDataplane,
  type SocketDataplane,
} from '../index.js';

/** js: Node streams; hand-over: native relay of connections Node accepted; native: the relay's threads also accept. */
export type RelayMode = 'js' | 'hand-over' | 'native';

/** The dataplane options that select a relay mode. */
export function relayOptions(mode: RelayMode): Record<string, unknown> {
  if (mode === 'js') return { relay: 'js' };
  return { relay: 'native', relayAccept: mode === 'native' };
}

/**
 * The relays every TCP test runs on: `js` (Node streams), `hand-over` (Node accepts and
 * connects, the addon's threads relay) and `native` (the addon's threads also accept and
 * connect), for `describe.each(relayModes())('title (%s)', (_, mode) => …)`. A native relay
 * that cannot load (the addon not built) marks its tests skipped with the reason, and fails
 * them under CI.
 */
export function relayModes(): [string, { relay: RelayMode; skip: boolean }][] {
  const need = requires({ check: () => nativeRelayUnavailable() });
  return [
    ['js relay', { relay: 'js', skip: false }],
    [`native relay, hand-over${need.note}`, { relay: 'hand-over', skip: need.skip }],
    [`native relay, native accept${need.note}`, { relay: 'native', skip: need.skip }],
  ];
}

let currentRelay: RelayMode | undefined;

/** In a `describe.each(relayModes())` body: the harness uses that relay; skipped when it cannot run. */
export function useRelay(mode: { relay: RelayMode; skip: boolean }): void {
  beforeEach((ctx) => {
    if (mode.skip) ctx.skip();
    currentRelay = mode.relay;
    return () => {
      currentRelay = undefined;
    };
  });
}

/** The dataplane part of a config, with the relay of the running test (for tests that apply their own config). */
export function dataplaneConfig(): { name: 'socket'; options: Record<string, unknown> } {
  return { name: 'socket', options: currentRelay ? relayOptions(currentRelay) : {} };
}

/** The connections of `h` went through the relay the test asked for (so a native test really relayed natively). */
export function expectRelayed(h: Harness, atLeast = 1): void {
  const info = h.dp.relayInfo();
  if (currentRelay === 'native' || currentRelay === 'hand-over') {
    expect(info.mode).toBe('native');
    expect(info.accepts).toBe(currentRelay === 'native');
    expect(info.handedOff).toBeGreaterThanOrEqual(atLeast);
  } else if (currentRelay === 'js') {
    expect(info.mode).toBe('js');
    expect(info.handedOff).toBe(0);
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** A UDP port free on 127.0.0.1 right now. */
export async function freeUdpPort(host = '127.0.0.1'): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, host, r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export type BackendMode =
  /** Answers `name` to the first bytes and closes (FIN). */
  | 'name'
  /** Echoes everything; ends its side after the client ended its side. */
  | 'echo'
  /** Accepts, reads, and never answers. */
  | 'silent'
  /** Accepts, reads, and resets the connection at the first bytes. */
  | 'reset-on-data';

export interface Backend {
  name: string;
  port: number;
  address: string;
  server: Server;
  sockets: Set<Socket>;
  /** Connections accepted so far. */
  accepted: number;
  /** Remote addresses of accepted connections (the balancer's local addresses). */
  peers: string[];
  /** Everything received, per connection, in order. */
  received: Buffer[][];
  /** Socket error codes seen (ECONNRESET when the balancer propagated a client reset). */
  errors: string[];
  close(): Promise<void>;
}

export async function tcpBackend(
  name: string,
  mode: BackendMode = 'name',
  host = '127.0.0.1',
): Promise<Backend> {
  const sockets = new Set<Socket>();
  const b: Backend = {
    name,
    port: 0,
    address: '',
    server: undefined as unknown as Server,
    sockets,
    accepted: 0,
    peers: [],
    received: [],
    errors: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => b.server.close(r));
    },
  };
  b.server = createServer({ allowHalfOpen: true }, (s) => {
    b.accepted++;
    b.peers.push(s.remoteAddress ?? '');
    const got: Buffer[] = [];
    b.received.push(got);
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', (e: NodeJS.ErrnoException) => b.errors.push(e.code ?? e.message));
    if (mode === 'silent') {
      s.on('data', (d: Buffer) => got.push(d));
      return;
    }
    let answered = false;
    s.on('data', (d: Buffer) => {
      got.push(d);
      if (mode === 'echo') {
        if (!s.write(d)) {
          s.pause();
          s.once('drain', () => s.resume());
        }
      } else if (mode === 'reset-on-data') s.resetAndDestroy();
      else if (!answered) {
        answered = true;
        s.end(name);
      }
    });
    s.on('end', () => {
      if (mode === 'echo') s.end();
    });
  });
  await new Promise<void>((r) => b.server.listen(0, host, r));
  b.port = (b.server.address() as { port: number }).port;
  b.address = host.includes(':') ? `[${host}]:${b.port}` : `${host}:${b.port}`;
  return b;
}

export interface ClientResult {
  data: string;
  error?: string;
}

/** Connects, writes `payload`, half-closes when `end`, and resolves with everything read until close. */
export function request(
  port: number,
  payload: string | Buffer = 'hello',
  opts: { end?: boolean; host?: string; localAddress?: string } = {},
): Promise<ClientResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const s = connect({
      host: opts.host ?? '127.0.0.1',
      port,
      allowHalfOpen: false,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    s.on('close', () => resolve({ data: Buffer.concat(chunks).toString(), ...(error ? { error } : {}) }));
    s.write(payload);
    if (opts.end !== false) s.end();
  });
}

/** An open client for step-by-step tests. */
export interface OpenClient {
  socket: Socket;
  received: () => string;
  ended: Promise<void>;
  closed: Promise<{ error?: string }>;
  /** Resolves when at least `n` bytes have been read. */
  waitBytes(n: number): Promise<void>;
}

export async function openClient(
  port: number,
  host = '127.0.0.1',
  localAddress?: string,
): Promise<OpenClient> {
  const s = connect({ host, port, allowHalfOpen: true, ...(localAddress ? { localAddress } : {}) });
  const chunks: Buffer[] = [];
  let total = 0;
  const waiters: { n: number; r: () => void }[] = [];
  s.on('data', (d: Buffer) => {
    chunks.push(d);
    total += d.length;
    for (const w of [...waiters]) {
      if (total < w.n) continue;
      waiters.splice(waiters.indexOf(w), 1);
      w.r();
    }
  });
  let error: string | undefined;
  s.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
  const ended = new Promise<void>((r) => s.once('end', r));
  const closed = new Promise<{ error?: string }>((r) => s.once('close', () => r(error ? { error } : {})));
  await new Promise<void>((r, j) => {
    s.once('connect', r);
    s.once('error', j);
  });
  return {
    socket: s,
    received: () => Buffer.concat(chunks).toString(),
    ended,
    closed,
    waitBytes: (n) => (total >= n ? Promise.resolve() : new Promise((r) => waiters.push({ n, r }))),
  };
}

/** Polls `check` (real time) until it returns true; fails with `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const tick = (ms = 20) => new Promise((r) => setTimeout(r, ms));

export interface Harness {
  kernel: Kernel;
  clock: Clock;
  manual: ManualClock | undefined;
  dp: SocketDataplane;
  port: number;
  events: { [K in FulcrumEventName]?: FulcrumEventMap[K][] };
  apply(services: HarnessService[]): Promise<unknown>;
  /** Advances the manual clock in sweep-sized steps, letting I/O run between steps. */
  advance(ms: number, step?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A kernel with the socket dataplane and the real schedulers, serving `services` (each
 * `listen` defaults to a fresh port on 127.0.0.1). Uses a ManualClock unless `realClock`.
 */
export type HarnessService = Omit<ServiceInput, 'listen'> & { listen?: string };

export async function harness(
  services: HarnessService[],
  opts: { options?: Record<string, unknown>; realClock?: boolean; plugins?: AnyPlugin[] } = {},
): Promise<Harness> {
  const manual = opts.realClock ? undefined : new ManualClock(1_000_000);
  const kernel = createKernel({
    plugins: [socketDataplane, rr, wrr, wlc, sh, ...(opts.plugins ?? [])],
    ...(manual ? { clock: manual } : {}),
  });
  const port = await freePort();
  const events: Harness['events'] = {};
  for (const name of [
    'connection:opened',
    'connection:closed',
    'connection:failed',
    'health:signal',
  ] as const) {
    kernel.events.on(name, (p: unknown) => ((events[name] ??= []) as unknown[]).push(p));
  }
  const withListen = (list: typeof services): ServiceInput[] =>
    list.map((s, i) => {
      if (!s.listen && i > 0) throw new Error('only the first service gets a listen address by default');
      return { ...s, listen: s.listen ?? `127.0.0.1:${port}` } as ServiceInput;
    });
  const config = (list: typeof services): ConfigInput => ({
    dataplane: { name: 'socket', options: { ...dataplaneConfig().options, ...opts.options } },
    services: withListen(list),
  });
  await kernel.apply(config(services));
  const dp = kernel.dataplane;
  if (!isSocketDataplane(dp)) throw new Error('not the socket dataplane');
  const h: Harness = {
    kernel,
    clock: kernel.clock,
    manual,
    dp,
    port,
    events,
    apply: (list) => kernel.apply(config(list)),
    async advance(ms, step = 1000) {
      if (!manual) throw new Error('advance needs the manual clock');
      for (let done = 0; done < ms; done += step) {
        manual.advance(Math.min(step, ms - done));
        await tick(2);
      }
      await tick(10);
    },
    close: () => kernel.close(),
  };
  return h;
}

/** What each test file's afterEach does first: closes the test's harness, then its backends (emptying the list). */
export async function closeHarness(
  h: Harness | undefined,
  backends: { close(): Promise<unknown> }[],
): Promise<void> {
  await h?.close();
  for (const b of backends.splice(0)) await b.close();
}

/** `{ server: active/inactive }` of one service, for compact assertions. */
export function counts(
  dp: SocketDataplane,
  service: string,
): Record<string, { active: number; inactive: number }> {
  const s = dp.services().find((x) => x.name === service);
  return Object.fromEntries(
    (s?.servers ?? []).map((r) => [r.server, { active: r.activeConns, inactive: r.inactiveConns }]),
  );
}

export function udpClient(): Promise<UdpSocket> {
  const s = createSocket('udp4');
  return new Promise((r) => s.bind(0, '127.0.0.1', () => r(s)));
}

/**
 * A TCP port whose connects hang in SYN_SENT: a listener with a full accept queue (backlog 0
 * and connections nobody accepts), so Linux drops further SYNs. Python holds it because
 * Node always accepts; the process ends when its stdin closes or on close().
 */
export async function hangingPort(): Promise<{ port: number; close(): void }> {
  const script = [
    'import socket, sys, time',
    's = socket.socket()',
    "s.bind(('127.0.0.1', 0))",
    's.listen(0)',
    'port = s.getsockname()[1]',
    'fillers = []',
    'for _ in range(3):',
    '    c = socket.socket()',
    '    c.setblocking(False)',
    '    try:',
    "        c.connect(('127.0.0.1', port))",
    '    except BlockingIOError:',
    '        pass',
    '    fillers.append(c)',
    'time.sleep(0.2)',
    'print(port, flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const child = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  return {
    port,
    close: () => {
      child.stdin.end();
      if (child.pid) process.kill(child.pid);
    },
  };
}

export interface UdpBackend {
  name: string;
  address: string;
  port: number;
  socket: UdpSocket;
  /** Datagrams received, with the sender's `address:port`. */
  received: { from: string; data: string }[];
  close(): Promise<void>;
}

/** A UDP server answering `name:<datagram>` to each datagram, or nothing when `silent`. */
export async function udpBackend(name: string, opts: { silent?: boolean } = {}): Promise<UdpBackend> {
  const socket = createSocket('udp4');
  const received: UdpBackend['received'] = [];
  socket.on('message', (msg, rinfo) => {
    received.push({ from: `${rinfo.address}:${rinfo.port}`, data: msg.toString() });
    if (!opts.silent) socket.send(`${name}:${msg.toString()}`, rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', r));
  const port = socket.address().port;
  return {
    name,
    address: `127.0.0.1:${port}`,
    port,
    socket,
    received,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
}

/** Sends a datagram from `client` and resolves with the next reply and where it came from (or undefined after `waitMs`). */
export function udpAsk(
  client: UdpSocket,
  port: number,
  msg: string,
  waitMs = 2000,
): Promise<{ data: string; from: string } | undefined> {
  return new Promise((resolve) => {
    const onMessage = (m: Buffer, rinfo: { address: string; port: number }) => {
      clearTimeout(timer);
      resolve({ data: m.toString(), from: `${rinfo.address}:${rinfo.port}` });
    };
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      resolve(undefined);
    }, waitMs);
    client.once('message', onMessage);
    client.send(msg, port, '127.0.0.1');
  });
}
