import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  closeHarness,
  expectRelayed,
  harness,
  tcpBackend,
  waitFor,
  type Backend,
  type Harness,
  relayModes,
  useRelay,
} from './helpers.js';

let backends: Backend[] = [];
let h: Harness | undefined;

afterEach(async () => {
  await closeHarness(h, backends);
  h = undefined;
});

type Outcome = 'echoed' | 'reset' | 'half-closed';

/** One client: echo round trip, a reset mid-way, or a half-close before reading the reply. */
function client(port: number, kind: Outcome): Promise<Outcome | string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    let got = '';
    let error: string | undefined;
    s.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    s.on('data', (d) => {
      got += d;
      if (kind === 'echoed' && got === 'ping') s.end();
      if (kind === 'reset' && got.length > 0) s.resetAndDestroy();
    });
    s.on('end', () => {
      if (kind === 'half-closed') s.end();
    });
    s.on('close', () => {
      if (kind === 'reset') resolve(got.length > 0 ? 'reset' : `reset before data: ${error}`);
      else resolve(got === 'ping' && !error ? kind : `${kind} failed: ${JSON.stringify(got)} ${error}`);
    });
    if (kind === 'half-closed') s.end('ping');
    else s.write('ping');
  });
}

describe.each(relayModes())('soak (%s)', (_, mode) => {
  useRelay(mode);

  it('5,000 connections (echo, reset, half-close) through 4 servers leave nothing behind', async () => {
    backends = await Promise.all(['a', 'b', 'c', 'd'].map((n) => tcpBackend(n, 'echo')));
    h = await harness([
      { name: 'soak', scheduler: 'wlc', realServers: backends.map((b) => ({ address: b.address })) },
    ]);
    const fds = () => readdirSync('/proc/self/fd').length;
    const fdsBefore = fds();
    const total = 5000;
    const kinds: Outcome[] = [
      'echoed',
      'echoed',
      'echoed',
      'echoed',
      'echoed',
      'echoed',
      'echoed',
      'echoed',
      'reset',
      'half-closed',
    ];
    const outcomes: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 100 }, async () => {
        while (next < total) {
          const i = next++;
          outcomes.push(await client(h!.port, kinds[i % kinds.length]!));
        }
      }),
    );
    const bad = outcomes.filter((o) => !['echoed', 'reset', 'half-closed'].includes(o));
    expect(bad).toEqual([]);
    expect(outcomes).toHaveLength(total);

    // Closed entries linger as TIME_WAIT/CLOSE; one timeWait later the table is empty.
    await waitFor(
      () => h!.dp.connections().every((e) => e.state === 'TIME_WAIT' || e.state === 'CLOSE'),
      'only closed entries',
    );
    await h.advance(11_000);
    expect(h.dp.size).toBe(0);
    const status = h.dp.services()[0]!;
    expect(status.liveConns).toBe(0);
    for (const s of status.servers) expect([s.activeConns, s.inactiveConns]).toEqual([0, 0]);
    expect(status.servers.reduce((n, s) => n + s.conns, 0)).toBe(total);
    // wlc spread them: each server got a fair share. wlc weighs live connections, so a
    // server whose connections last longer (the backends share this process's event loop
    // with 100 clients) rightly gets fewer new ones; CI saw 1,049 of 5,000. The exact
    // choices are checked against IPVS's wlc in the scheduler's own tests.
    for (const s of status.servers) expect(s.conns).toBeGreaterThan((total / 4) * 0.75);
    await waitFor(() => backends.every((b) => b.sockets.size === 0), 'every server socket closed');
    expect(h.events['connection:opened']).toHaveLength(total);
    expect(h.events['connection:closed']).toHaveLength(total);
    // No descriptor left behind (by the relay threads either): the process holds what it held before.
    expect(h.dp.relayInfo().relayed).toBe(0);
    expect(fds()).toBeLessThanOrEqual(fdsBefore + 2);
    expectRelayed(h, total / 2);
  });
});
