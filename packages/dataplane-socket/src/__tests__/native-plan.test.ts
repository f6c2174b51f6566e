import { planHash, type HashField } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { nativeRelayUnavailable } from '../index.js';
import {
  harness,
  openClient,
  relayOptions,
  request,
  tcpBackend,
  waitFor,
  type Backend,
  type Harness,
} from './helpers.js';

// With native accept the relay threads execute sequence and hash plans themselves: they pick
// the server and connect at accept, and TypeScript learns it afterwards. These tests check
// that the picks are the ones TypeScript's executor makes, that they really were made
// natively (relayInfo().picked), and that everything the plan alone cannot decide is still
// scheduled by TypeScript.

const need = requires({ check: () => nativeRelayUnavailable() });
const native = { options: relayOptions('native') };

let h: Harness | undefined;
let backends: Backend[] = [];

afterEach(async () => {
  await h?.close();
  h = undefined;
  await Promise.all(backends.map((b) => b.close()));
  backends = [];
});

const names = (n: number) => Promise.all(['a', 'b', 'c'].slice(0, n).map((x) => tcpBackend(x)));

describe.skipIf(need.skip)('native plan execution' + need.note, () => {
  it('rr: the relay picks in sequence order, and the table, counts and listing follow', async () => {
    backends = await names(3);
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
      native,
    );
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push((await request(h.port)).data);
    expect(answers).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(h.dp.relayInfo()).toMatchObject({ accepts: true, handedOff: 6, picked: 6 });
    const stats = h.dp.services()[0]!.servers;
    expect(stats.map((s) => s.conns)).toEqual([2, 2, 2]);
    // Each connection is in the table (TIME_WAIT after a clean close), counted on its server.
    expect(stats.map((s) => s.inactiveConns)).toEqual([2, 2, 2]);
    expect(h.dp.connections().map((e) => e.state)).toEqual(Array(6).fill('TIME_WAIT'));

    // An open connection is listed with its server and the balancer's side toward it, read
    // from the relay's socket (what the server sees as its peer).
    const echo = await tcpBackend('e', 'echo');
    backends.push(echo);
    await h.apply([{ name: 'web', scheduler: 'rr', realServers: [{ address: echo.address }] }]);
    const c = await openClient(h.port);
    c.socket.write('ping');
    await c.waitBytes(4);
    const entry = h.dp.connections().find((e) => e.state === 'ESTABLISHED');
    expect(entry?.server).toBe(echo.address);
    expect(entry?.local).toBe(`127.0.0.1:${echo.sockets.values().next().value!.remotePort}`);
    expect(h.dp.relayInfo().picked).toBe(7);
    c.socket.end();
    await c.closed;
  });

  it('relayAcceptSpread accepting-thread: the same picks, each client relayed by the thread that accepted it', async () => {
    backends = await names(2);
    h = await harness(
      [{ name: 'web', scheduler: 'rr', realServers: backends.map((b) => ({ address: b.address })) }],
      { options: { ...relayOptions('native'), relayAcceptSpread: 'accepting-thread' } },
    );
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) answers.push((await request(h.port)).data);
    expect(answers).toEqual(['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b']);
    expect(h.dp.relayInfo()).toMatchObject({ accepts: true, handedOff: 8, picked: 8, relayed: 0 });
    await h.advance(11_000);
    expect(h.dp.size).toBe(0);
  });

  it('hash: the relay picks the server planHash picks, over all four fields', async () => {
    backends = await names(3);
    const fields: HashField[] = ['source-address', 'source-port', 'destination-address', 'destination-port'];
    h = await harness(
      [
        {
          name: 'web',
          scheduler: { name: 'sh', options: { fields } },
          realServers: backends.map((b) => ({ address: b.address })),
        },
      ],
      native,
    );
    const snap = h.kernel.snapshot('web');
    if (snap.plan.kind !== 'hash') throw new Error('sh compiles a hash plan');
    const table = snap.plan.table;
    const seen = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const sourceAddress = `127.0.0.${2 + (i % 12)}`;
      const c = await openClient(h.port, '127.0.0.1', sourceAddress);
      const tuple = {
        sourceAddress,
        sourcePort: c.socket.localPort!,
        destinationAddress: '127.0.0.1',
        destinationPort: h.port,
      };
      const expected = snap.realServers[table[planHash(fields, tuple) % table.length]!]!;
      c.socket.end('x');
      await c.closed;
      const name = backends.find((b) => b.address === expected.key)!.name;
      expect(c.received(), `${sourceAddress}:${tuple.sourcePort}`).toBe(name);
      seen.add(name);
    }
    expect(seen.size).toBeGreaterThan(1);
    expect(h.dp.relayInfo().picked).toBe(24);
  });

  it('a server set to weight 0 gets no new picks; back with a weight, it gets them again', async () => {
    backends = await names(3);
    const servers = (wb: number) =>
      backends.map((b) => ({ address: b.address, ...(b.name === 'b' ? { weight: wb } : {}) }));
    h = await harness([{ name: 'web', scheduler: 'wrr', realServers: servers(1) }], native);
    await h.apply([{ name: 'web', scheduler: 'wrr', realServers: servers(0) }]);
    const answers: string[] = [];
    for (let i = 0; i < 6; i++) answers.push((await request(h.port)).data);
    expect(answers.sort()).toEqual(['a', 'a', 'a', 'c', 'c', 'c']);
    await h.apply([{ name: 'web', scheduler: 'wrr', realServers: servers(1) }]);
    const again: string[] = [];
    for (let i = 0; i < 6; i++) again.push((await request(h.port)).data);
    expect(again.sort()).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
    expect(h.dp.relayInfo().picked).toBe(12);
  });

  it('TypeScript schedules what the plan alone cannot decide: persistence, maxConnections, PROXY header, least-connections', async () => {
    backends = await names(2);
    const realServers = backends.map((b) => ({ address: b.address }));
    const cases = [
      { name: 'web', scheduler: 'rr', realServers, persistence: { timeout: '60s' } },
      { name: 'web', scheduler: 'rr', realServers, maxConnections: 100 },
      {
        name: 'web',
        scheduler: 'rr',
        realServers,
        passthrough: { name: 'proxy-protocol', options: { version: 1 } },
      },
      { name: 'web', scheduler: 'wlc', realServers },
    ];
    for (const service of cases) {
      h = await harness([service], native);
      for (let i = 0; i < 3; i++) expect((await request(h.port)).error).toBeUndefined();
      await waitFor(() => h!.dp.relayInfo().handedOff === 3, 'three accepted connections');
      expect(h.dp.relayInfo().picked).toBe(0);
      await h.close();
      h = undefined;
    }
    // relayPlans: false leaves every client to the event loop.
    h = await harness([{ name: 'web', scheduler: 'rr', realServers }], {
      options: { ...relayOptions('native'), relayPlans: false },
    });
    for (let i = 0; i < 3; i++) expect((await request(h.port)).error).toBeUndefined();
    expect(h.dp.relayInfo()).toMatchObject({ handedOff: 3, picked: 0 });
    await h.close();
    // And once the service no longer needs it, the relay picks again.
    h = await harness([cases[0]!], native);
    await h.apply([{ name: 'web', scheduler: 'rr', realServers }]);
    expect((await request(h.port)).error).toBeUndefined();
    expect(h.dp.relayInfo().picked).toBe(1);
  });
});
