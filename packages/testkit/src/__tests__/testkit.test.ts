import {
  createKernel,
  defineDataplane,
  defineHealthCheck,
  definePassthrough,
  defineScheduler,
  type SchedulerPlugin,
} from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import {
  createMemoryDataplane,
  dataplaneCases,
  healthCheckCases,
  makeView,
  passthroughCases,
  PlanSimulator,
  schedulerCases,
  type ConformanceCase,
} from '../index.js';

const none = { type: 'object', additionalProperties: false, properties: {} };

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: none,
  create: () => ({
    compile: (v) => ({
      kind: 'sequence',
      sequence: v.realServers.filter((r) => r.weight > 0).map((r) => r.index),
    }),
  }),
});

async function failures(cases: ConformanceCase[]): Promise<string[]> {
  const out: string[] = [];
  for (const c of cases) {
    try {
      await c.run();
    } catch (e) {
      out.push(`${c.name} :: ${(e as Error).message}`);
    }
  }
  return out;
}

const broken = (compile: SchedulerPlugin['create']) =>
  defineScheduler({ name: 'broken', kernel: '^0.1.0', optionsSchema: none, create: compile });

describe('scheduler conformance', () => {
  it('passes a correct scheduler', async () => {
    expect(await failures(schedulerCases(rr))).toEqual([]);
  });

  it.each([
    [
      'picks weight-0 servers',
      () => ({ compile: (v) => ({ kind: 'sequence', sequence: v.realServers.map((r) => r.index) }) }),
      /whose weight is 0, can be picked/,
    ],
    [
      'forgets servers',
      () => ({
        compile: (v) => ({
          kind: 'sequence',
          sequence:
            v.realServers.length > 1
              ? [v.realServers.findIndex((r) => r.weight > 0)]
              : v.realServers.filter((r) => r.weight > 0).map((r) => r.index),
        }),
      }),
      /can never be picked/,
    ],
    [
      'returns malformed plans',
      () => ({ compile: () => ({ kind: 'sequence', sequence: [99] }) }),
      /not a server index/,
    ],
    [
      'is not deterministic',
      () => ({
        compile: (v) => ({
          kind: 'sequence',
          sequence: v.realServers
            .filter((r) => r.weight > 0)
            .map((r) => r.index)
            .sort(() => Math.random() - 0.5),
        }),
      }),
      /differ/,
    ],
    [
      'mutates the view',
      () => ({
        compile: (v) => {
          (v.realServers as unknown[]).sort();
          return { kind: 'sequence', sequence: [] };
        },
      }),
      /read only|Cannot assign|frozen/,
    ],
    [
      'returns a shared instance',
      (() => {
        const one = { compile: () => ({ kind: 'sequence' as const, sequence: [] }) };
        return () => one;
      })(),
      /same instance twice/,
    ],
  ] as [string, SchedulerPlugin['create'], RegExp][])(
    'fails a scheduler that %s',
    async (_label, create, expected) => {
      const f = await failures(schedulerCases(broken(create)));
      expect(f.length).toBeGreaterThan(0);
      expect(f.join('\n')).toMatch(expected);
    },
  );

  it('fails a plugin made for another kernel, and one whose options accept anything', async () => {
    expect((await failures(schedulerCases({ ...rr, kernel: '^3.0.0' })))[0]).toMatch(
      /supports @fulcrum\/kernel \^3\.0\.0/,
    );
    expect((await failures(schedulerCases({ ...rr, optionsSchema: { type: 'object' } })))[0]).toMatch(
      /additionalProperties: false/,
    );
  });
});

describe('other conformance suites', () => {
  it('health checks: a watch that keeps reporting after stop fails', async () => {
    const good = defineHealthCheck({
      name: 'good',
      kernel: '^0.1.0',
      optionsSchema: none,
      create: (ctx) => ({
        watch: (_t, report) => {
          const t = ctx.clock.setInterval(() => report({ up: true, reason: 'ok' }), 1000);
          return { stop: () => t.cancel() };
        },
      }),
    });
    const leaky = defineHealthCheck({
      name: 'leaky',
      kernel: '^0.1.0',
      optionsSchema: none,
      create: (ctx) => ({
        watch: (_t, report) => {
          ctx.clock.setInterval(() => report({ up: true, reason: 'ok' }), 1000);
          return { stop: () => {} };
        },
      }),
    });
    expect(await failures(healthCheckCases(good))).toEqual([]);
    expect((await failures(healthCheckCases(leaky))).join()).toMatch(/verdict\(s\) arrived after stop/);
  });

  it('passthroughs: settings must survive JSON', async () => {
    const good = definePassthrough({
      name: 'pp',
      kernel: '^0.1.0',
      requires: ['proxy-protocol'],
      optionsSchema: none,
      create: () => ({ settings: { version: 2 } }),
    });
    const bad = definePassthrough({
      name: 'pp',
      kernel: '^0.1.0',
      requires: [],
      optionsSchema: none,
      create: () => ({ settings: { at: new Date(0) } }),
    });
    expect(await failures(passthroughCases(good))).toEqual([]);
    expect((await failures(passthroughCases(bad))).join()).toMatch(/JSON round trip/);
  });

  it('dataplanes: the memory dataplane conforms; one without tcp/udp does not', async () => {
    expect(await failures(dataplaneCases(createMemoryDataplane().plugin))).toEqual([]);
    const none2 = defineDataplane({
      name: 'x',
      kernel: '^0.1.0',
      capabilities: [],
      optionsSchema: none,
      create: () => ({ start: async () => {}, apply: async () => {}, stop: async () => {} }),
    });
    expect((await failures(dataplaneCases(none2))).join()).toMatch(/must include tcp or udp/);
  });
});

describe('PlanSimulator', () => {
  it('keeps ActiveConn/InActConn per server and feeds them to least-connections plans', () => {
    const sim = new PlanSimulator({ kind: 'least-connections', formula: 'wlc', weights: [1, 2] });
    const conns = Array.from({ length: 6 }, () => sim.connect()!);
    // wlc: each new connection goes where active*256/weight is least → 2:4 split.
    expect(conns.map((c) => c.server)).toEqual([0, 1, 1, 0, 1, 1]);
    expect(sim.load(1)).toEqual({ active: 4, inactive: 0 });
    sim.deactivate(conns[1]!);
    expect(sim.load(1)).toEqual({ active: 3, inactive: 1 });
    for (const c of conns) sim.close(c);
    expect(sim.openConnections).toBe(0);
    expect([sim.load(0), sim.load(1)]).toEqual([
      { active: 0, inactive: 0 },
      { active: 0, inactive: 0 },
    ]);
  });

  it('reports the distribution of many picks', () => {
    const sim = new PlanSimulator({ kind: 'sequence', sequence: [0, 0, 0, 1] });
    expect(sim.distribution(4000, 2)).toEqual([3000, 1000]);
  });
});

describe('memory dataplane', () => {
  it('runs under a real kernel and follows plan swaps', async () => {
    const mem = createMemoryDataplane();
    const kernel = createKernel({ plugins: [rr, mem.plugin] });
    await kernel.apply({
      dataplane: 'memory',
      services: [
        {
          name: 'web',
          listen: '127.0.0.1:80',
          scheduler: 'rr',
          realServers: [{ address: '10.0.0.1:80' }, { address: '10.0.0.2:80' }],
        },
      ],
    });
    expect([mem.connect('web')!.server, mem.connect('web')!.server]).toEqual(['10.0.0.1:80', '10.0.0.2:80']);
    await kernel.setWeight('web', '10.0.0.1:80', 0);
    expect([mem.connect('web')!.server, mem.connect('web')!.server]).toEqual(['10.0.0.2:80', '10.0.0.2:80']);
    await kernel.close();
    expect(mem.state.running).toBe(false);
  });

  it('makeView builds frozen views', () => {
    const v = makeView([2, { weight: 0, address: '::1', port: 8080 }]);
    expect(v.realServers[1]!.key).toBe('[::1]:8080');
    expect(Object.isFrozen(v.realServers)).toBe(true);
  });
});
