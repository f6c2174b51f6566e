import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  harness,
  openClient,
  request,
  tcpBackend,
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

/** `name{labels} value` lines of the exposition text, as a map. */
async function scrape(h: Harness): Promise<Map<string, number>> {
  const text = await h.kernel.metrics.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(fulcrum_\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

describe.each(relayModes())('metrics (%s)', (_, mode) => {
  useRelay(mode);

  it('counts connections, bytes and reads per server, and ActiveConn/InActConn as gauges', async () => {
    backends = await Promise.all(['alpha', 'beta'].map((n) => tcpBackend(n)));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a }, { address: b }] }]);
    for (let i = 0; i < 4; i++) await request(h.port, 'hello');
    const m = await scrape(h);
    const l = (server: string) => `{service="web",server="${server}"}`;
    expect(m.get(`fulcrum_connections_total${l(a)}`)).toBe(2);
    expect(m.get(`fulcrum_connections_total${l(b)}`)).toBe(2);
    expect(m.get(`fulcrum_bytes_in_total${l(a)}`)).toBe(10);
    expect(m.get(`fulcrum_bytes_out_total${l(a)}`)).toBe(2 * 'alpha'.length);
    expect(m.get(`fulcrum_bytes_out_total${l(b)}`)).toBe(2 * 'beta'.length);
    expect(m.get(`fulcrum_packets_in_total${l(a)}`)).toBeGreaterThanOrEqual(2);
    expect(m.get(`fulcrum_packets_out_total${l(b)}`)).toBeGreaterThanOrEqual(2);
    // The four closed connections linger as TIME_WAIT: inactive, as ipvsadm shows them.
    expect(m.get(`fulcrum_connections_active${l(a)}`)).toBe(0);
    expect(m.get(`fulcrum_connections_inactive${l(a)}`)).toBe(2);
    await h.advance(11_000);
    const later = await scrape(h);
    expect(later.get(`fulcrum_connections_inactive${l(a)}`)).toBe(0);
    // Counters only grow: a second scrape adds nothing that did not happen.
    expect(later.get(`fulcrum_connections_total${l(a)}`)).toBe(2);
    expect(later.get(`fulcrum_bytes_in_total${l(a)}`)).toBe(10);
  });

  it('shows live connections as active, and keeps a removed server totals', async () => {
    backends = await Promise.all(['a', 'b'].map((n) => tcpBackend(n, 'echo')));
    const [a, b] = backends.map((x) => x.address) as [string, string];
    h = await harness([{ name: 'web', scheduler: 'rr', realServers: [{ address: a }, { address: b }] }], {
      options: { timeouts: { timeWait: 0 } },
    });
    for (let i = 0; i < 3; i++) {
      const c = await openClient(h.port);
      c.socket.write('12345');
      await c.waitBytes(5);
      clients.push(c);
    }
    let m = await scrape(h);
    expect(m.get(`fulcrum_connections_active{service="web",server="${a}"}`)).toBe(2);
    expect(m.get(`fulcrum_connections_active{service="web",server="${b}"}`)).toBe(1);
    await h.kernel.removeRealServer('web', b);
    clients[1]!.socket.end();
    await clients[1]!.closed;
    await h.advance(2000);
    m = await scrape(h);
    expect(h.dp.services()[0]!.servers.map((s) => s.server)).toEqual([a]);
    expect(m.get(`fulcrum_bytes_in_total{service="web",server="${b}"}`)).toBe(5);
    expect(m.has(`fulcrum_connections_active{service="web",server="${b}"}`)).toBe(false);
  });

  it('counts refusals and failures by reason', async () => {
    backends = [await tcpBackend('a')];
    h = await harness([
      { name: 'web', scheduler: 'rr', maxConnections: 1, realServers: [{ address: backends[0]!.address }] },
    ]);
    const c = await openClient(h.port);
    clients.push(c);
    await request(h.port);
    await request(h.port);
    const m = await scrape(h);
    expect(m.get('fulcrum_connections_refused_total{service="web",reason="max-connections"}')).toBe(2);
  });
});
