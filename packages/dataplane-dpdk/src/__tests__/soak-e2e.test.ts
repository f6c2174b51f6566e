// A soak through the EAL dataplane with two worker lcores: tens of thousands of short
// connections (wrk, Connection: close) and a keep-alive run, balanced by wlc on counts the
// workers share. Afterwards every connection has ended by its own timeout, the table is
// empty (so every local port is back in its pool), the counts are zero, and nothing was
// dropped for a reason that would mean a leak or a limit: no connection is lost.
import type { ServiceStatus } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { dataplaneYaml, distReason, startChild, teardown, type Dataplane } from './e2e.js';
import { Topology } from './netns.js';

const need = requires({
  root: true,
  commands: ['ip', 'ethtool', 'wrk'],
  check: () => nativeUnavailableReason() ?? distReason(),
});

describe.skipIf(need.skip)(`a soak through two EAL worker lcores${need.note}`, () => {
  const t = new Topology();
  const prefix = `fulcrum-${t.id}-soak`;
  const spawned: ChildProcess[] = [];
  let dp: Dataplane | undefined;

  const wrk = (args: string[]) =>
    new Promise<string>((resolve) => {
      const c = spawn('ip', ['netns', 'exec', t.cli, 'wrk', ...args, 'http://10.1.0.100/'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      spawned.push(c);
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (out += d.toString()));
      c.once('exit', () => resolve(out));
    });
  const counters = async () => {
    dp!.send('counters');
    return JSON.parse(await dp!.next('counters')) as { metrics: string; services: ServiceStatus[] };
  };
  const metric = (metrics: string, name: string) =>
    Number(new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);

  beforeAll(async () => {
    t.setup();
    await t.startServer();
    dp = startChild(
      t,
      `${dataplaneYaml(t, {
        prefix,
        workers: 2,
        maxConnections: 65_536,
        options: `
    timeouts: { established: 5s, synRecv: 2s, finWait: 1s, timeWait: 1s, close: 1s, closeWait: 1s, lastAck: 1s }`,
      })}
services:
  - name: web
    protocol: tcp
    listen: 10.1.0.100:80
    scheduler: wlc
    localAddresses: [10.2.0.200, 10.2.0.201]
    realServers:
      - { address: '10.2.0.11:8080', weight: 1 }
      - { address: '10.2.0.12:8080', weight: 1 }
`,
    );
    await dp.next('ready');
  }, 30_000);
  afterAll(() => teardown(t, prefix, [...spawned, dp?.child]));

  it(
    'serves every short and kept-alive request, and ends with an empty table and no drop that means a leak',
    {
      timeout: 120_000,
    },
    async () => {
      const short = await wrk(['-t', '2', '-c', '32', '-d', '8s', '-H', 'Connection: close']);
      const shortRequests = Number(/(\d+) requests in/.exec(short)?.[1] ?? 0);
      expect(short, short).not.toMatch(/Socket errors|Non-2xx/);
      expect(shortRequests, short).toBeGreaterThan(5000);
      const kept = await wrk(['-t', '2', '-c', '16', '-d', '3s']);
      expect(kept, kept).not.toMatch(/Socket errors|Non-2xx/);
      expect(Number(/(\d+) requests in/.exec(kept)?.[1] ?? 0), kept).toBeGreaterThan(1000);

      dp!.send('workers');
      const w = JSON.parse(await dp!.next('workers')) as { counters: Record<string, number>[] };
      // Both workers opened connections (the fanout spread the clients).
      for (const c of w.counters) expect(c.conns_created, JSON.stringify(w.counters)).toBeGreaterThan(100);

      // Every connection ends by its own timeout: TIME_WAIT/CLOSE are 1 s, the sweep 100 ms.
      let last = await counters();
      for (let i = 0; i < 40 && metric(last.metrics, 'fulcrum_dpdk_connections') !== 0; i++) {
        await new Promise((r) => setTimeout(r, 250));
        last = await counters();
      }
      const { metrics, services } = last;
      expect(metric(metrics, 'fulcrum_dpdk_connections')).toBe(0);
      const created = metric(metrics, 'fulcrum_dpdk_connections_total{event="created"}');
      // A client port wrk takes again while its old connection is in TIME_WAIT here reuses
      // that entry (IPVS's TIME_WAIT + SYN): at CI's ~13k connections/s wrk cycles its 28k
      // ports every two seconds, so there are fewer entries than requests, never more.
      expect(created).toBeGreaterThan(1000);
      expect(created).toBeLessThanOrEqual(shortRequests + 64);
      expect(metric(metrics, 'fulcrum_dpdk_connections_total{event="expired"}')).toBe(created);
      for (const s of services[0]!.servers) {
        expect(s, JSON.stringify(s)).toMatchObject({ activeConns: 0, inactiveConns: 0 });
        expect(s.conns).toBeGreaterThan(created / 4); // wlc kept the two servers near even
      }
      for (const reason of [
        'out_of_window',
        'conn_table_full',
        'local_ports_exhausted',
        'redirect_ring_full',
        'no_server',
        'service_full',
      ])
        expect(metrics, reason).not.toMatch(
          new RegExp(`fulcrum_dpdk_drops_total\\{reason="${reason}"\\} [1-9]`),
        );
    },
  );
});
