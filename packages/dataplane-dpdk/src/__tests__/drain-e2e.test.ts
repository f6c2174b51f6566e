// Draining a server end to end: real TCP clients (Node sockets in the client namespace)
// through the dpdk dataplane (the kernel from the built dist/, in a child process, on
// af_packet veth ports) to echo servers in the server namespace. The operator sets
// `drain: true` on one server: its idle connection is reset at idleClose, its active one
// lives until the deadline and is reset then, both ends see ECONNRESET (so each RST
// carried a sequence number its receiver accepted), new connections go to the other
// server, and the other server's idle connection is left alone.
import { requires } from '@fulcrum/testkit';
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { dataplaneYaml, distReason, startChild } from './e2e.js';
import { Topology } from './netns.js';

const need = requires({
  root: true,
  commands: ['ip', 'ethtool'],
  check: () => nativeUnavailableReason() ?? distReason(),
});

/** A child process speaking JSON lines on stdout, driven by lines on stdin. */
class Lines {
  readonly lines: string[] = [];
  readonly #waiters: (() => void)[] = [];
  constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (l) => {
      this.lines.push(l);
      this.#waiters.splice(0).forEach((w) => w());
    });
  }
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
  /** The first line `match` accepts (removed), within `ms`. */
  async next<T>(match: (l: string) => T | undefined, ms = 15_000, what = 'a line'): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = 0; i < this.lines.length; i++) {
        const v = match(this.lines[i]!);
        if (v !== undefined) {
          this.lines.splice(i, 1);
          return v;
        }
      }
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`process exited waiting for ${what}: ${this.lines.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no ${what}: ${this.lines.join('\n')}`);
      await new Promise<void>((r) => {
        this.#waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }
}

// Echo servers on both addresses: a connection is greeted with the address it reached, then
// echoed; how each ends is printed (ECONNRESET when the balancer's RST was accepted).
const SERVER = `
const net = require('net');
net.createServer((s) => {
  const local = s.localAddress, remote = s.remotePort;
  s.write(local + '\\n');
  s.pipe(s);
  let code = '';
  s.on('error', (e) => { code = e.code; });
  s.on('close', () => console.log(JSON.stringify({ ev: 'closed', local, remote, code })));
}).listen(9000, '0.0.0.0', () => console.log(JSON.stringify({ ev: 'listening' })));
`;

// Clients: "open <name> idle|active"; an active one sends a byte every 250 ms. Prints when a
// connection is greeted (with the server's address) and how and when it ends.
const CLIENT = `
const net = require('net');
const socks = new Map();
const say = (o) => console.log(JSON.stringify({ ...o, t: Date.now() }));
require('readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [cmd, name, mode] = l.split(' ');
  if (cmd === 'open') {
    const s = net.connect(80, '10.1.0.100');
    socks.set(name, s);
    let greeted = false, timer, code = '', echoed = 0;
    s.setEncoding('utf8');
    s.on('data', (d) => {
      if (!greeted) {
        greeted = true;
        say({ ev: 'opened', name, server: d.split('\\n')[0], port: s.localPort });
        if (mode === 'active') timer = setInterval(() => s.write('x'), 250);
      } else echoed += d.length;
    });
    s.on('error', (e) => { code = e.code; });
    s.on('close', () => { clearInterval(timer); say({ ev: 'closed', name, code, echoed }); });
  }
  if (cmd === 'ping') {
    const s = socks.get(name);
    s.once('data', (d) => say({ ev: 'pong', name, data: d }));
    s.write('ping');
  }
});
`;

interface Opened {
  name: string;
  server: string;
  port: number;
  t: number;
}
interface Closed {
  name: string;
  code: string;
  echoed: number;
  t: number;
}

describe.skipIf(need.skip)(`draining a server end to end (namespaces, af_packet)${need.note}`, () => {
  const t = new Topology();
  const children: ChildProcess[] = [];
  const prefixes: string[] = [];
  beforeAll(() => {
    t.setup();
  });
  /** Kills (by PID) what a test started and waits for it: the next one reuses the ports. */
  async function stopAll(): Promise<void> {
    await Promise.all(
      children.splice(0).map(async (c) => {
        if (c.exitCode !== null || c.signalCode !== null || !c.pid) return;
        const gone = new Promise((r) => c.once('exit', r));
        process.kill(c.pid, 'SIGKILL');
        await gone;
      }),
    );
  }
  afterEach(stopAll);
  afterAll(async () => {
    await stopAll();
    t.cleanup();
    for (const p of prefixes) rmSync(`/var/run/dpdk/${p}`, { recursive: true, force: true });
  });

  /** Echo servers, the dataplane (from dist/) with `service` added to the echo service, a client. */
  async function start(name: string, service: string, workers = 1) {
    const prefix = `fulcrum-${t.id}-${name}`;
    prefixes.push(prefix);
    const spawnIn = (ns: string, code: string) => {
      const c = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      children.push(c);
      return new Lines(c);
    };
    const json = <T>(ev: string, extra: (o: T) => boolean = () => true) =>
      ((l: string) => {
        try {
          const o = JSON.parse(l) as T & { ev: string };
          return o.ev === ev && extra(o) ? o : undefined;
        } catch {
          return undefined;
        }
      }) as (l: string) => T | undefined;

    const server = spawnIn(t.srv, SERVER);
    await server.next(json('listening'), 10_000, 'the echo server');
    const yaml = `${dataplaneYaml(t, { prefix, workers, options: '\n    connectionEvents: true' })}
services:
  - name: echo
    protocol: tcp
    listen: 10.1.0.100:80
    scheduler: rr
    localAddresses: [10.2.0.200]
    ${service}
    realServers:
      - { address: '10.2.0.11:9000', weight: 1 }
      - { address: '10.2.0.12:9000', weight: 1 }
`;
    const dp = startChild(t, yaml);
    children.push(dp.child);
    await dp.next('ready');

    const client = spawnIn(t.cli, CLIENT);
    const open = async (name: string, mode: 'idle' | 'active') => {
      client.send(`open ${name} ${mode}`);
      return client.next(
        json<Opened>('opened', (o) => o.name === name),
        10_000,
        `${name} opened`,
      );
    };
    return { server, dp, client, open, json };
  }

  it(
    'resets the idle connection at idleClose and the active one at the deadline; new ones go to the other server',
    { timeout: 60_000 },
    async () => {
      const { server, dp, client, open, json } = await start(
        'drain',
        'drain: { idleClose: 2s, deadline: 6s }',
      );
      // rr: idle → .11, other → .12, busy → .11
      const idle = await open('idle', 'idle');
      const other = await open('other', 'idle');
      const busy = await open('busy', 'active');
      expect([idle.server, other.server, busy.server]).toEqual(['10.2.0.11', '10.2.0.12', '10.2.0.11']);

      await new Promise((r) => setTimeout(r, 500));
      dp.send(
        `replace ${JSON.stringify(["{ address: '10.2.0.11:9000', weight: 1 }", "{ address: '10.2.0.11:9000', weight: 1, drain: true }"])}`,
      );
      await dp.next('applied');
      const drainedAt = Date.now();

      // New connections go to the other server only.
      const fresh = [await open('fresh1', 'idle'), await open('fresh2', 'idle')];
      expect(fresh.map((f) => f.server)).toEqual(['10.2.0.12', '10.2.0.12']);

      // The idle one: reset about 2 s after its last byte (the greeting), well before the deadline.
      const idleEnd = await client.next(
        json<Closed>('closed', (o) => o.name === 'idle'),
        10_000,
        'idle closed',
      );
      expect(idleEnd.code).toBe('ECONNRESET');
      expect(idleEnd.t - idle.t).toBeGreaterThanOrEqual(1900);
      expect(idleEnd.t - idle.t).toBeLessThan(3500);
      // The active one is still there then, and ends at the deadline (6 s after the drain).
      const busyEnd = await client.next(
        json<Closed>('closed', (o) => o.name === 'busy'),
        15_000,
        'busy closed',
      );
      expect(busyEnd.code).toBe('ECONNRESET');
      expect(busyEnd.t - drainedAt).toBeGreaterThan(5000);
      expect(busyEnd.t - drainedAt).toBeLessThan(7500);
      expect(busyEnd.echoed).toBeGreaterThan(10); // it was talking all along
      expect(busyEnd.t).toBeGreaterThan(idleEnd.t + 2000);

      // The servers' ends were reset too: both of 10.2.0.11's connections, nothing of 10.2.0.12's.
      const serverEnds = [
        await server.next(json<{ local: string; code: string }>('closed'), 5000, 'a server-side close'),
        await server.next(json<{ local: string; code: string }>('closed'), 5000, 'a server-side close'),
      ];
      expect(serverEnds).toEqual([
        expect.objectContaining({ local: '10.2.0.11', code: 'ECONNRESET' }),
        expect.objectContaining({ local: '10.2.0.11', code: 'ECONNRESET' }),
      ]);
      // The other server's idle connection (idle far longer than idleClose) still answers.
      client.send('ping other');
      expect(
        await client.next(
          json<{ data: string }>('pong', (o) => 'name' in o),
          5000,
          'pong',
        ),
      ).toMatchObject({
        data: 'ping',
      });
      expect(server.lines.filter((l) => l.includes('"closed"'))).toEqual([]);

      dp.send('events');
      const events = JSON.parse(await dp.next('events ')) as {
        ended: { client: string; server: string; reason: string }[];
      };
      expect(events.ended).toEqual([
        expect.objectContaining({
          client: `10.1.0.2:${idle.port}`,
          server: '10.2.0.11:9000',
          reason: 'drain-idle',
        }),
        expect.objectContaining({
          client: `10.1.0.2:${busy.port}`,
          server: '10.2.0.11:9000',
          reason: 'drain-deadline',
        }),
      ]);
      dp.send('counters');
      const { metrics } = JSON.parse(await dp.next('counters ')) as { metrics: string };
      expect(metrics).toMatch(/fulcrum_dpdk_connections_total\{event="drain_idle"\} 1\b/);
      expect(metrics).toMatch(/fulcrum_dpdk_connections_total\{event="drain_deadline"\} 1\b/);
      expect(metrics).toMatch(/fulcrum_dpdk_resets_sent_total [4-9]/);
      dp.send('exit');
    },
  );

  it(
    'remove with onFailure: remove resets every connection of the server at once, both ends',
    { timeout: 60_000 },
    async () => {
      const { server, dp, client, open, json } = await start('expire', 'onFailure: remove');
      const a = await open('a', 'active'); // .11
      const b = await open('b', 'idle'); // .12
      const c = await open('c', 'idle'); // .11
      expect([a.server, b.server, c.server]).toEqual(['10.2.0.11', '10.2.0.12', '10.2.0.11']);
      await new Promise((r) => setTimeout(r, 300));
      dp.send(`replace ${JSON.stringify(["      - { address: '10.2.0.11:9000', weight: 1 }\n", ''])}`);
      await dp.next('applied');
      const removedAt = Date.now();
      const ends = [
        await client.next(
          json<Closed>('closed', (o) => o.name === 'a'),
          5000,
          'a closed',
        ),
        await client.next(
          json<Closed>('closed', (o) => o.name === 'c'),
          5000,
          'c closed',
        ),
      ];
      expect(ends.map((e) => e.code)).toEqual(['ECONNRESET', 'ECONNRESET']);
      for (const e of ends) expect(e.t - removedAt).toBeLessThan(1000);
      const serverEnds = [
        await server.next(json<{ local: string; code: string }>('closed'), 5000, 'a server-side close'),
        await server.next(json<{ local: string; code: string }>('closed'), 5000, 'a server-side close'),
      ];
      expect(serverEnds).toEqual([
        expect.objectContaining({ local: '10.2.0.11', code: 'ECONNRESET' }),
        expect.objectContaining({ local: '10.2.0.11', code: 'ECONNRESET' }),
      ]);
      client.send('ping b');
      expect(await client.next(json<{ data: string }>('pong'), 5000, 'pong')).toMatchObject({ data: 'ping' });
      dp.send('events');
      const events = JSON.parse(await dp.next('events ')) as { ended: { client: string; reason: string }[] };
      expect(events.ended.map((e) => [e.client, e.reason]).sort()).toEqual(
        [
          [`10.1.0.2:${a.port}`, 'expire'],
          [`10.1.0.2:${c.port}`, 'expire'],
        ].sort(),
      );
      dp.send('exit');
    },
  );

  it('with two workers, each drains its own connections', { timeout: 90_000 }, async () => {
    const { server, dp, client, open, json } = await start(
      'workers',
      'drain: { idleClose: 2s, deadline: 20s }',
      2,
    );
    interface Listing {
      listing: { connections: { worker: number; client: string; server: string }[] };
      counters: Record<string, number>[];
    }
    const workers = async () => {
      dp.send('workers');
      return JSON.parse(await dp.next('workers ')) as Listing;
    };
    // Connections until the kernel's fanout has given each worker one to 10.2.0.11 (rr
    // alternates servers; which worker sees a client's SYN is the kernel's hash).
    const opened: Opened[] = [];
    let owners = new Set<number>();
    for (let i = 0; i < 32 && owners.size < 2; i += 2) {
      opened.push(await open(`c${i}`, 'idle'), await open(`c${i + 1}`, 'idle'));
      const w = await workers();
      owners = new Set(
        w.listing.connections.filter((c) => c.server === '10.2.0.11:9000').map((c) => c.worker),
      );
    }
    expect([...owners].sort()).toEqual([0, 1]);
    const drained = opened.filter((o) => o.server === '10.2.0.11');
    const kept = opened.filter((o) => o.server === '10.2.0.12');
    dp.send(
      `replace ${JSON.stringify(["{ address: '10.2.0.11:9000', weight: 1 }", "{ address: '10.2.0.11:9000', weight: 1, drain: true }"])}`,
    );
    await dp.next('applied');
    const drainedAt = Date.now();
    for (const o of drained) {
      const end = await client.next(
        json<Closed>('closed', (c) => c.name === o.name),
        10_000,
        `${o.name} closed`,
      );
      expect(end.code).toBe('ECONNRESET');
      expect(end.t - drainedAt).toBeLessThan(3500); // idle since they opened: reset within idleClose
    }
    for (let i = 0; i < drained.length; i++)
      expect(
        await server.next(json<{ local: string; code: string }>('closed'), 5000, 'server close'),
      ).toMatchObject({
        local: '10.2.0.11',
        code: 'ECONNRESET',
      });
    const w = await workers();
    expect(w.counters.map((c) => c.conns_drain_idle! > 0)).toEqual([true, true]);
    expect(w.counters.reduce((n, c) => n + c.conns_drain_idle!, 0)).toBe(drained.length);
    // The other server's connections, idle just as long, all still answer.
    for (const o of kept) {
      client.send(`ping ${o.name}`);
      expect(
        await client.next(
          json<{ name: string; data: string }>('pong', (p) => p.name === o.name),
          5000,
          'pong',
        ),
      ).toMatchObject({ data: 'ping' });
    }
    dp.send('exit');
  });
});
