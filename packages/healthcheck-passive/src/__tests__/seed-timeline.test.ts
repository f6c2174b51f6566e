import { createKernel } from '@fulcrum/kernel';
import wrr from '@fulcrum/scheduler-wrr';
import { ManualClock, createMemoryDataplane } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import passive from '../index.js';

/**
 * The seed scenario of issue 6 (DPVS's passive check, one client request a second, three
 * backends, backend 0 stopped), on the kernel with fake time. The dataplane is modelled:
 * a connect to a stopped backend is refused and signalled; a connect that is answered is
 * signalled as a success. `retry` is what a Fulcrum dataplane does with a refused connect
 * before anything was sent: try another server.
 */
async function scenario(opts: { retry: boolean; stopAt: number; restartAt?: number; until: number }) {
  const clock = new ManualClock();
  const md = createMemoryDataplane();
  const kernel = createKernel({ plugins: [wrr, md.plugin, passive], clock });
  const backends = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'];
  await kernel.apply({
    dataplane: 'memory',
    services: [
      {
        name: 'web',
        listen: '10.0.0.100:80',
        scheduler: 'wrr',
        healthChecks: ['passive'],
        realServers: backends.map((address) => ({ address })),
      },
    ],
  });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  const dead = (t: number) => t >= opts.stopAt && (opts.restartAt === undefined || t < opts.restartAt);
  const failed: number[] = [];
  const servedBy: [number, string][] = [];
  const pickedWhileInhibited: number[] = [];
  for (let t = 1; t <= opts.until; t++) {
    clock.advance(1000);
    await settle();
    const tried = new Set<string>();
    for (;;) {
      const inhibited = md.state.services.get('web')!.snapshot.realServers[0]!.weight === 0;
      const c = md.connect('web');
      if (!c) {
        failed.push(t);
        break;
      }
      md.state.services.get('web')!.simulator.close(c.conn);
      if (c.server === backends[0] && inhibited) pickedWhileInhibited.push(t);
      if (c.server === backends[0] && dead(t)) {
        kernel.events.emit('health:signal', {
          service: 'web',
          server: c.server,
          ok: false,
          reason: 'refused',
        });
        await settle();
        tried.add(c.server);
        if (!opts.retry || tried.size === backends.length) {
          failed.push(t);
          break;
        }
        continue;
      }
      kernel.events.emit('health:signal', { service: 'web', server: c.server, ok: true, reason: 'answered' });
      servedBy.push([t, c.server]);
      break;
    }
    await settle();
  }
  await kernel.close();
  return { failed, servedBy, pickedWhileInhibited, backends };
}

describe("the seed timeline: DPVS's, reproduced, and Fulcrum's", () => {
  it('without retry (DPVS): a refused request at the stop, then one per inhibit period of 5, 10, 20, 40 s', async () => {
    const { failed } = await scenario({ retry: false, stopAt: 9, until: 100 });
    // DPVS's log shows 10, 16, 26, 47, 89 s: the same inhibit periods, plus up to a second or
    // two each for the server's turn to come round on a multi-lcore rr and curl's cadence
    expect(failed).toEqual([10, 15, 25, 45, 85]);
    const gaps = failed.slice(1).map((t, i) => t - failed[i]!);
    expect(gaps).toEqual([5, 10, 20, 40]);
  });

  it('with the dataplane retrying a refused connect: zero failed requests, nothing scheduled on the inhibited server', async () => {
    const { failed, pickedWhileInhibited, servedBy, backends } = await scenario({
      retry: true,
      stopAt: 9,
      until: 100,
    });
    expect(failed).toEqual([]);
    expect(pickedWhileInhibited).toEqual([]);
    expect(servedBy.filter(([t, s]) => t >= 9 && s === backends[0])).toEqual([]);
  });

  it('a backend that comes back gets traffic again within one inhibit period', async () => {
    const restartAt = 60; // after DOWN at ~9 (5 s), ~15 (10 s), ~26 (20 s), ~47 (40 s): inhibited until ~87
    const { failed, servedBy, backends } = await scenario({ retry: true, stopAt: 9, restartAt, until: 200 });
    expect(failed).toEqual([]);
    const back = servedBy.find(([t, s]) => t >= restartAt && s === backends[0]);
    expect(back, 'backend 0 served again').toBeDefined();
    expect(back![0] - restartAt).toBeLessThanOrEqual(40 + 3);
    // once back it stays UP and keeps its share
    const after = servedBy.filter(([t]) => t > back![0] + 3);
    const share = after.filter(([, s]) => s === backends[0]).length / after.length;
    expect(share).toBeGreaterThan(0.25);
  });
});
