import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  freePort,
  harness,
  openClient,
  request,
  tcpBackend,
  waitFor,
  type Backend,
  type Harness,
  type OpenClient,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;
const clients: OpenClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.socket.destroy();
  await closeHarness(h, backends);
  h = undefined;
});

async function held(port: number): Promise<OpenClient> {
  const c = await openClient(port);
  c.socket.write('a');
  await c.waitBytes(1);
  clients.push(c);
  return c;
}

async function echoes(c: OpenClient, text: string): Promise<void> {
  const before = c.received().length;
  c.socket.write(text);
  await c.waitBytes(before + text.length);
  expect(c.received().slice(before)).toBe(text);
}

describe.each(relayModes())('reconfiguration at run time drops no connection (%s)', (_, mode) => {
  useRelay(mode);

  it('adds and removes services; a removed service finishes its connections, then is gone', async () => {
    backends = [await tcpBackend('e', 'echo')];
    const e = backends[0]!.address;
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: e }] }], {
      options: { timeouts: { timeWait: 0 } },
    });
    const c = await held(h.port);
    const apiPort = await freePort();
    await h.apply([
      { name: 'web', scheduler: 'rr', realServers: [{ address: e }] },
      { name: 'api', listen: `127.0.0.1:${apiPort}`, scheduler: 'rr', realServers: [{ address: e }] },
    ]);
    expect((await request(apiPort, 'api')).data).toBe('api');
    await h.apply([
      { name: 'api', listen: `127.0.0.1:${apiPort}`, scheduler: 'rr', realServers: [{ address: e }] },
    ]);
    expect((await request(h.port, 'x')).error).toBe('ECONNREFUSED');
    await echoes(c, 'still served');
    expect(h.dp.services().find((s) => s.name === 'web')).toMatchObject({ retiring: true, liveConns: 1 });
    c.socket.end();
    await c.closed;
    await h.advance(2000);
    expect(h.dp.services().map((s) => s.name)).toEqual(['api']);
  });

  it('renaming a service keeps its port open: no client is refused during the change', async () => {
    backends = [await tcpBackend('a')];
    const a = backends[0]!.address;
    h = await harness([{ name: 'old', scheduler: 'rr', realServers: [{ address: a }] }]);
    let refused = 0;
    let served = 0;
    let running = true;
    const loop = (async () => {
      while (running) {
        const r = await request(h!.port);
        if (r.data === 'a') served++;
        else refused++;
      }
    })();
    await waitFor(() => served > 20, 'some traffic');
    await h.apply([
      { name: 'new', listen: `127.0.0.1:${h.port}`, scheduler: 'rr', realServers: [{ address: a }] },
    ]);
    const at = served;
    await waitFor(() => served > at + 20, 'traffic after the change');
    running = false;
    await loop;
    expect(refused).toBe(0);
    expect(h.dp.services().find((s) => s.name === 'new')).toBeDefined();
  });

  it('moving a service to another port: the new port serves, connections on the old one go on', async () => {
    backends = [await tcpBackend('e', 'echo')];
    const e = backends[0]!.address;
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: e }] }]);
    const c = await held(h.port);
    const next = await freePort();
    await h.apply([
      { name: 'web', listen: `127.0.0.1:${next}`, scheduler: 'rr', realServers: [{ address: e }] },
    ]);
    expect((await request(next, 'moved')).data).toBe('moved');
    expect((await request(h.port)).error).toBe('ECONNREFUSED');
    await echoes(c, 'old port connection');
  });

  it('weight changes and plan swaps under load: no failed request, in-flight connections keep their server', async () => {
    backends = await Promise.all(['a', 'b', 'c'].map((n) => tcpBackend(n, 'echo')));
    const addrs = backends.map((b) => b.address);
    h = await harness([
      { name: 'web', scheduler: 'wrr', realServers: addrs.map((address) => ({ address, weight: 1 })) },
    ]);
    const long = [await held(h.port), await held(h.port), await held(h.port)];
    const serverOf = (c: OpenClient) =>
      h!.dp.connections().find((e) => e.client.endsWith(`:${c.socket.localPort}`))!.server;
    const before = long.map(serverOf);
    let failures = 0;
    let done = 0;
    const load = Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = 0; i < 40; i++) {
          const r = await request(h!.port, 'ping');
          if (r.data !== 'ping') failures++;
          done++;
        }
      }),
    );
    for (let w = 0; done < 320; w++) {
      await h.kernel.setWeight('web', addrs[w % 3]!, w % 4);
      await new Promise((r) => setTimeout(r, 5));
    }
    await load;
    expect(failures).toBe(0);
    expect(long.map(serverOf)).toEqual(before);
    for (const c of long) await echoes(c, 'after the swaps');
  });
});
