import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  createKernel,
  createKernelContainer,
  DataplaneError,
  defineScheduler,
  ErrorCodes,
  FulcrumError,
  ManualClock,
  PluginError,
  Tokens,
  type AnyPlugin,
  type ConfigInput,
  type FulcrumEventMap,
} from '../index.js';
import { manualHealthCheck, recordingDataplane, rr, settle } from './fixtures.js';

const config = (
  servers: { address: string; weight?: number }[] = [{ address: '127.0.0.1:9001' }],
  extra: object = {},
): ConfigInput => ({
  dataplane: 'memory',
  services: [{ name: 'web', listen: '127.0.0.1:8080', scheduler: 'rr', realServers: servers, ...extra }],
});

function setup(extraPlugins: readonly AnyPlugin[] = []) {
  const dp = recordingDataplane();
  const hc = manualHealthCheck();
  const kernel = createKernel({ plugins: [rr, dp.plugin, hc.plugin, ...extraPlugins] });
  const events: [string, unknown][] = [];
  for (const name of [
    'service:added',
    'service:updated',
    'service:removed',
    'server:added',
    'server:removed',
    'server:weight',
    'server:health',
    'server:state',
    'service:quorum',
    'config:applied',
    'config:rejected',
    'plugin:error',
  ] as (keyof FulcrumEventMap)[]) {
    kernel.events.on(name, (p: unknown) => events.push([name, p]));
  }
  return { kernel, dp, hc, events };
}

/** Everything observable about the running state, to compare before and after a rejected change. */
function observe(k: ReturnType<typeof createKernel>) {
  return { version: k.configVersion, input: k.input, config: k.config, snapshots: k.snapshots() };
}

describe('applying configurations', () => {
  it('starts the dataplane once and hands it snapshots with compiled plans', async () => {
    const { kernel, dp, events } = setup();
    const r = await kernel.apply(
      config([
        { address: '127.0.0.1:9001', weight: 2 },
        { address: '127.0.0.1:9002', weight: 0 },
      ]),
    );
    expect(r).toEqual({ version: 1, added: ['web'], updated: [], removed: [] });
    expect(dp.state.started).toBe(1);
    expect(dp.state.options).toEqual([{ idleTimeout: 90_000 }]);
    const snap = dp.state.changes[0]!.added[0]!;
    expect(snap).toMatchObject({
      name: 'web',
      version: 1,
      plan: { kind: 'sequence', sequence: [0] },
      retired: [],
    });
    expect(snap.realServers.map((s) => [s.key, s.weight, s.health])).toEqual([
      ['127.0.0.1:9001', 2, 'up'],
      ['127.0.0.1:9002', 0, 'up'],
    ]);
    expect(Object.isFrozen(snap)).toBe(true);
    expect(events.map((e) => e[0])).toEqual([
      'service:added',
      'server:added',
      'server:added',
      'config:applied',
    ]);
  });

  it('applies the difference only: unchanged services are not touched, plans recompile on weight changes', async () => {
    const { kernel, dp } = setup();
    const two: ConfigInput = {
      dataplane: 'memory',
      services: [
        {
          name: 'web',
          listen: '127.0.0.1:8080',
          scheduler: 'rr',
          realServers: [{ address: '127.0.0.1:9001' }],
        },
        {
          name: 'api',
          listen: '127.0.0.1:8081',
          scheduler: 'rr',
          realServers: [{ address: '127.0.0.1:9101' }],
        },
      ],
    };
    await kernel.apply(two);
    const api = kernel.snapshot('api');
    two.services![0]!.realServers!.push({ address: '127.0.0.1:9002', weight: 3 });
    expect(await kernel.apply(two)).toEqual({ version: 2, added: [], updated: ['web'], removed: [] });
    expect(kernel.snapshot('api')).toBe(api);
    expect(dp.state.changes[1]).toMatchObject({
      added: [],
      removed: [],
      updated: [{ name: 'web', version: 2, plan: { sequence: [0, 1] } }],
    });
    // The same config again changes nothing, and the dataplane is not called.
    expect(await kernel.apply(two)).toEqual({ version: 3, added: [], updated: [], removed: [] });
    expect(dp.state.changes).toHaveLength(2);
  });

  it('replaces a service whose address changes, and removes services no longer configured', async () => {
    const { kernel, dp } = setup();
    await kernel.apply(config());
    const moved = config();
    moved.services![0]!.listen = '127.0.0.1:9999';
    expect(await kernel.apply(moved)).toEqual({ version: 2, added: [], updated: ['web'], removed: [] });
    expect(dp.state.changes[1]).toMatchObject({
      removed: ['web'],
      added: [{ name: 'web', listen: { port: 9999 } }],
    });
    expect(await kernel.apply({ dataplane: 'memory', services: [] })).toMatchObject({ removed: ['web'] });
    expect(kernel.snapshots()).toEqual([]);
  });

  it('leaves the running state exactly as it was when a config is invalid', async () => {
    const { kernel, dp, events } = setup();
    await kernel.apply(config());
    const before = observe(kernel);
    const bad = config([{ address: '127.0.0.1:9001', weight: -5 }]);
    await expect(kernel.apply(bad)).rejects.toBeInstanceOf(ConfigError);
    expect(observe(kernel)).toEqual(before);
    expect(dp.state.changes).toHaveLength(1);
    expect(events.at(-1)![0]).toBe('config:rejected');
    expect(await kernel.metrics.text()).toMatch(/fulcrum_config_applies_total\{result="rejected"\} 1/);
  });

  it('leaves the running state as it was when a plugin throws in create', async () => {
    const boom = defineScheduler({
      name: 'boom',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object' },
      create: () => {
        throw new Error('no luck');
      },
    });
    const { kernel, hc } = setup([boom]);
    await kernel.apply(config([{ address: '127.0.0.1:9001' }], { healthChecks: ['manual'] }));
    const before = observe(kernel);
    const next = config([{ address: '127.0.0.1:9001' }], { healthChecks: ['manual', 'manual'] });
    next.services!.push({ name: 'b', listen: '127.0.0.1:1', scheduler: 'boom' });
    const err = await kernel.apply(next).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PluginError);
    expect(err).toMatchObject({
      code: ErrorCodes.PLUGIN_FAILED,
      plugin: 'boom',
      hook: 'create',
      message: 'plugin "boom" failed in create(): no luck',
    });
    expect(observe(kernel)).toEqual(before);
    // The checks created for the rejected change were closed; the running one still watches.
    expect(hc.state.created).toBe(3);
    expect(hc.state.closed).toBe(2);
    expect([...hc.state.watching]).toEqual(['127.0.0.1:9001']);
  });

  it('refuses a malformed plan with FULCRUM_PLAN_INVALID and changes nothing', async () => {
    const liar = defineScheduler({
      name: 'liar',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object' },
      create: () => ({ compile: () => ({ kind: 'sequence', sequence: [5] }) }),
    });
    const { kernel } = setup([liar]);
    await kernel.apply(config());
    const before = observe(kernel);
    const err = await kernel.apply(config(undefined, { scheduler: 'liar' })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCodes.PLAN_INVALID, plugin: 'liar', hook: 'compile' });
    expect((err as Error).message).toMatch(/sequence\[0\] = 5 is not a server index in 0..0/);
    expect(observe(kernel)).toEqual(before);
  });

  it('leaves the running state as it was when the dataplane rejects a change', async () => {
    const { kernel, dp } = setup();
    await kernel.apply(config());
    const before = observe(kernel);
    dp.state.failNextApply = new Error('EADDRINUSE');
    const err = await kernel.apply(config([{ address: '127.0.0.1:9002' }])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DataplaneError);
    expect((err as DataplaneError).message).toBe('dataplane "memory" failed in apply(): EADDRINUSE');
    expect(observe(kernel)).toEqual(before);
    // And it keeps working afterwards.
    expect((await kernel.apply(config([{ address: '127.0.0.1:9002' }]))).version).toBe(2);
  });

  it('stops the dataplane again when the first apply fails after start', async () => {
    const { kernel, dp } = setup();
    dp.state.failNextApply = new Error('no ports');
    await expect(kernel.apply(config())).rejects.toBeInstanceOf(DataplaneError);
    expect(dp.state.stopped).toBe(1);
    expect(kernel.config).toBeUndefined();
    await kernel.apply(config());
    expect(dp.state.started).toBe(2);
  });

  it('refuses to change the dataplane while running', async () => {
    const { kernel } = setup();
    await kernel.apply(config());
    const other = { ...config(), dataplane: { name: 'memory', options: { idleTimeout: 5 } } };
    await expect(kernel.apply(other)).rejects.toMatchObject({
      issues: [{ path: 'dataplane', message: expect.stringMatching(/restart/) }],
    });
  });

  it('serialises concurrent changes', async () => {
    const { kernel } = setup();
    await kernel.apply(config([{ address: '127.0.0.1:9001' }]));
    await Promise.all([
      kernel.addRealServer('web', { address: '127.0.0.1:9002' }),
      kernel.addRealServer('web', { address: '127.0.0.1:9003' }),
      kernel.setWeight('web', '127.0.0.1:9001', 5),
    ]);
    expect(kernel.snapshot('web').realServers.map((r) => `${r.key}=${r.weight}`)).toEqual([
      '127.0.0.1:9001=5',
      '127.0.0.1:9002=1',
      '127.0.0.1:9003=1',
    ]);
    expect(kernel.configVersion).toBe(4);
  });
});

describe('run-time changes', () => {
  it('adds, updates and removes services and servers through the same validation', async () => {
    const { kernel, events } = setup();
    await kernel.apply(config());
    await kernel.addService({ name: 'api', listen: '127.0.0.1:8081', scheduler: 'rr' });
    await kernel.addRealServer('api', { address: '[::1]:9000', weight: 4 });
    await kernel.updateService('api', { onFailure: 'remove' });
    expect(kernel.snapshot('api')).toMatchObject({
      onFailure: 'remove',
      realServers: [{ key: '[::1]:9000', weight: 4 }],
    });
    await kernel.setWeight('api', '[::1]:9000', 1);
    expect(events.filter((e) => e[0] === 'server:weight').at(-1)![1]).toEqual({
      service: 'api',
      server: '[::1]:9000',
      weight: 1,
      previous: 4,
      reason: 'configuration',
    });
    await kernel.removeRealServer('api', '[::1]:9000');
    expect(kernel.snapshot('api')).toMatchObject({
      realServers: [],
      retired: [{ server: '[::1]:9000', action: 'expire' }],
      plan: { sequence: [] },
    });
    await kernel.removeService('api');
    expect(kernel.snapshots().map((s) => s.name)).toEqual(['web']);
  });

  it('validates run-time input with paths, and names unknown services and servers', async () => {
    const { kernel } = setup();
    await kernel.apply(config());
    const before = observe(kernel);
    await expect(kernel.addRealServer('web', { address: '127.0.0.1:9001' })).rejects.toMatchObject({
      issues: [
        {
          path: 'services[0].realServers[1].address',
          message: 'duplicate real server (also realServers[0])',
        },
      ],
    });
    await expect(kernel.setWeight('web', '127.0.0.1:9001', 70000)).rejects.toMatchObject({
      issues: [{ path: 'services[0].realServers[0].weight', message: 'must be integer <= 65535' }],
    });
    await expect(kernel.setWeight('nope', '127.0.0.1:9001', 1)).rejects.toMatchObject({
      code: ErrorCodes.SERVICE_NOT_FOUND,
    });
    await expect(kernel.setWeight('web', '127.0.0.1:1', 1)).rejects.toMatchObject({
      code: ErrorCodes.SERVER_NOT_FOUND,
    });
    expect(observe(kernel)).toEqual(before);
  });

  it('drains a server: weight 0, still listed, retired with drain, once', async () => {
    const { kernel } = setup();
    await kernel.apply(
      config([{ address: '127.0.0.1:9001' }, { address: '127.0.0.1:9002' }], {
        drain: { idleClose: '5s', deadline: '1m' },
      }),
    );
    await kernel.drainRealServer('web', '127.0.0.1:9002');
    expect(kernel.snapshot('web')).toMatchObject({
      drain: { idleCloseMs: 5000, deadlineMs: 60_000 },
      plan: { sequence: [0] },
      retired: [{ server: '127.0.0.1:9002', action: 'drain' }],
      realServers: [
        { draining: false },
        { key: '127.0.0.1:9002', weight: 0, configuredWeight: 1, draining: true },
      ],
    });
    await kernel.setWeight('web', '127.0.0.1:9001', 2);
    expect(kernel.snapshot('web').retired).toEqual([]);
  });

  it('refuses changes before the first apply and after close', async () => {
    const { kernel, dp } = setup();
    await expect(kernel.addService({ name: 'a', listen: '127.0.0.1:1' })).rejects.toMatchObject({
      code: ErrorCodes.STATE,
    });
    await kernel.apply(config());
    await kernel.close();
    expect(dp.state.stopped).toBe(1);
    await expect(kernel.apply(config())).rejects.toMatchObject({ code: ErrorCodes.STATE });
  });
});

describe('health', () => {
  it('takes a server out when a check says down and back when up, recompiling the plan', async () => {
    const { kernel, hc, dp, events } = setup();
    await kernel.apply(
      config([{ address: '127.0.0.1:9001' }, { address: '127.0.0.1:9002', weight: 2 }], {
        healthChecks: ['manual'],
      }),
    );
    expect([...hc.state.watching].sort()).toEqual(['127.0.0.1:9001', '127.0.0.1:9002']);
    hc.report('127.0.0.1:9002', { up: false, reason: 'connect ECONNREFUSED' });
    await settle();
    expect(kernel.snapshot('web')).toMatchObject({
      version: 2,
      plan: { sequence: [0] },
      realServers: [{ health: 'up' }, { health: 'down', weight: 0 }],
    });
    expect(dp.state.changes.at(-1)!.updated[0]!.version).toBe(2);
    expect(
      events.filter((e) => e[0] === 'server:health' || e[0] === 'server:weight').map((e) => e[1]),
    ).toEqual([
      {
        service: 'web',
        server: '127.0.0.1:9002',
        health: 'down',
        checker: 'manual',
        reason: 'connect ECONNREFUSED',
      },
      { service: 'web', server: '127.0.0.1:9002', weight: 0, previous: 2, reason: 'health check' },
    ]);
    expect(await kernel.metrics.text()).toMatch(
      /fulcrum_server_up\{service="web",server="127.0.0.1:9002"\} 0/,
    );
    // A repeated verdict changes nothing; a dynamic weight does.
    hc.report('127.0.0.1:9002', { up: false, reason: 'again' });
    hc.report('127.0.0.1:9002', { up: true, reason: 'exit 7', weight: 5 });
    await settle();
    expect(kernel.snapshot('web')).toMatchObject({
      version: 3,
      realServers: [{}, { health: 'up', weight: 5 }],
    });
  });

  it('keeps checks and their verdicts across changes that do not touch them', async () => {
    const { kernel, hc } = setup();
    const cfg = config([{ address: '127.0.0.1:9001' }, { address: '127.0.0.1:9002' }], {
      healthChecks: ['manual'],
    });
    await kernel.apply(cfg);
    hc.report('127.0.0.1:9002', { up: false, reason: 'down' });
    await settle();
    await kernel.addRealServer('web', { address: '127.0.0.1:9003' });
    expect(hc.state.created).toBe(1);
    expect(kernel.snapshot('web').realServers.map((r) => r.health)).toEqual(['up', 'down', 'up']);
    // The carried-over watch still reports into the current service.
    hc.report('127.0.0.1:9002', { up: true, reason: 'ok' });
    await settle();
    expect(kernel.snapshot('web').realServers[1]!.health).toBe('up');
    // Removing a server stops its watch; changing the checks replaces them all.
    await kernel.removeRealServer('web', '127.0.0.1:9001');
    expect(hc.state.watching.has('127.0.0.1:9001')).toBe(false);
    await kernel.updateService('web', { healthChecks: [{ name: 'manual', options: { interval: '5s' } }] });
    expect(hc.state.created).toBe(2);
    expect(hc.state.closed).toBe(1);
  });

  it('expires or drains a failed server as onFailure says', async () => {
    for (const [onFailure, action] of [
      ['remove', 'expire'],
      ['drain', 'drain'],
      ['inhibit', undefined],
    ] as const) {
      const { kernel, hc } = setup();
      await kernel.apply(config([{ address: '127.0.0.1:9001' }], { healthChecks: ['manual'], onFailure }));
      hc.report('127.0.0.1:9001', { up: false, reason: 'x' });
      await settle();
      expect(kernel.snapshot('web').retired).toEqual(action ? [{ server: '127.0.0.1:9001', action }] : []);
    }
  });

  it('reports a dataplane failure during a health recompile as a plugin error, keeping the old snapshot', async () => {
    const { kernel, hc, dp, events } = setup();
    await kernel.apply(config([{ address: '127.0.0.1:9001' }], { healthChecks: ['manual'] }));
    const before = kernel.snapshot('web');
    dp.state.failNextApply = new Error('ring full');
    hc.report('127.0.0.1:9001', { up: false, reason: 'x' });
    await settle();
    await settle();
    expect(kernel.snapshot('web')).toBe(before);
    expect(events.find((e) => e[0] === 'plugin:error')![1]).toMatchObject({ plugin: 'kernel' });
  });
});

describe('composition', () => {
  it('gives each kernel its own container, bus, metrics and registry', () => {
    const a = createKernel({ plugins: [rr] });
    const b = createKernel();
    expect(a.events).not.toBe(b.events);
    expect(a.metrics).not.toBe(b.metrics);
    expect(b.registry.get('scheduler', 'rr')).toBeUndefined();
  });

  it('injects the clock and logger given to the composition root into plugin contexts', async () => {
    const clock = new ManualClock(42);
    const seen: unknown[] = [];
    const probe = defineScheduler({
      name: 'probe',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object' },
      create: (ctx) => {
        seen.push(ctx.clock.now(), ctx.configPath, ctx.service?.name, ctx.plugin);
        return { compile: () => ({ kind: 'sequence', sequence: [] }) };
      },
    });
    const container = createKernelContainer({ clock });
    const kernel = container.resolve(Tokens.Kernel);
    expect(container.resolve(Tokens.Kernel)).toBe(kernel);
    expect(container.resolve(Tokens.Events)).toBe(kernel.events);
    kernel.use(probe, recordingDataplane().plugin);
    await kernel.apply({
      dataplane: 'memory',
      services: [{ name: 'x', listen: '127.0.0.1:1', scheduler: 'probe' }],
    });
    expect(seen).toEqual([42, 'services[0].scheduler', 'x', { kind: 'scheduler', name: 'probe' }]);
  });

  it('refuses a create() that returns a promise', async () => {
    const lazy = defineScheduler({
      name: 'lazy',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object' },
      create: (() => Promise.resolve({ compile: () => ({ kind: 'sequence', sequence: [] }) })) as never,
    });
    const { kernel } = setup([lazy]);
    await expect(kernel.apply(config(undefined, { scheduler: 'lazy' }))).rejects.toMatchObject({
      code: ErrorCodes.PLUGIN_INVALID,
      hook: 'create',
    });
  });

  it('errors are FulcrumErrors with JSON forms', () => {
    const e = new FulcrumError(ErrorCodes.STATE, 'x', { details: { a: 1 } });
    expect(JSON.parse(JSON.stringify(e))).toEqual({
      name: 'FulcrumError',
      code: 'FULCRUM_STATE',
      message: 'x',
      details: { a: 1 },
    });
  });
});

describe('quorum and sorry server (keepalived)', () => {
  const servers = (n: number) => Array.from({ length: n }, (_, i) => ({ address: `127.0.0.1:${9001 + i}` }));

  it('sends new connections to the sorry server while the quorum is lost, and back after', async () => {
    const { kernel, hc, events } = setup();
    await kernel.apply(
      config(servers(2), { healthChecks: ['manual'], quorum: 2, sorryServer: '127.0.0.1:7000' }),
    );
    expect(kernel.snapshot('web')).toMatchObject({
      quorum: { up: true, liveWeight: 2, required: 2 },
      plan: { sequence: [0, 1] },
      realServers: [{}, {}, { key: '127.0.0.1:7000', sorry: true, weight: 0 }],
    });
    hc.report('127.0.0.1:9002', { up: false, reason: 'refused' });
    await settle();
    expect(kernel.snapshot('web')).toMatchObject({
      quorum: { up: false, liveWeight: 1 },
      plan: { sequence: [2] },
      realServers: [{ weight: 0, health: 'up' }, { weight: 0, health: 'down' }, { weight: 1 }],
    });
    hc.report('127.0.0.1:9002', { up: true, reason: 'ok' });
    await settle();
    expect(kernel.snapshot('web')).toMatchObject({ quorum: { up: true }, plan: { sequence: [0, 1] } });
    expect(events.filter((e) => e[0] === 'server:state').map((e) => e[1])).toEqual([
      { service: 'web', server: '127.0.0.1:9002', health: 'down', reason: 'manual: refused' },
      { service: 'web', server: '127.0.0.1:9002', health: 'up', reason: 'manual: ok' },
    ]);
  });

  it('follows hysteresis: lost below quorum − h, regained at quorum + h', async () => {
    const { kernel, hc } = setup();
    await kernel.apply(config(servers(5), { healthChecks: ['manual'], quorum: 3, hysteresis: 1 }));
    const quorumEvents: unknown[] = [];
    kernel.events.on('service:quorum', (e) => quorumEvents.push(e));
    const set = async (port: number, up: boolean) => {
      hc.report(`127.0.0.1:${port}`, { up, reason: up ? 'ok' : 'down' });
      await settle();
      return kernel.snapshot('web').quorum;
    };
    expect(await set(9001, false)).toMatchObject({ up: true, liveWeight: 4 });
    expect(await set(9002, false)).toMatchObject({ up: true, liveWeight: 3 });
    expect(await set(9003, false)).toMatchObject({ up: true, liveWeight: 2 }); // 2 >= 3 - 1
    expect(await set(9004, false)).toMatchObject({ up: false, liveWeight: 1 });
    expect(await set(9001, true)).toMatchObject({ up: false, liveWeight: 2 });
    expect(await set(9002, true)).toMatchObject({ up: false, liveWeight: 3 }); // needs 3 + 1
    expect(await set(9003, true)).toMatchObject({ up: true, liveWeight: 4 });
    expect(quorumEvents).toEqual([
      { service: 'web', up: false, liveWeight: 1, required: 3 },
      { service: 'web', up: true, liveWeight: 4, required: 3 },
    ]);
    // Without a sorry server, losing the quorum changes no weight.
    expect(kernel.snapshot('web').plan).toEqual({ kind: 'sequence', sequence: [0, 1, 2, 4] });
  });

  it('normalises notify commands to argv', async () => {
    const { kernel } = setup();
    const { config: c } = await kernel.validate(
      config(servers(1), { notify: { up: '/usr/local/bin/notify  up --fast', down: ['/bin/echo', 'a b'] } }),
    );
    expect(c.services[0]!.notify).toEqual({
      up: ['/usr/local/bin/notify', 'up', '--fast'],
      down: ['/bin/echo', 'a b'],
    });
  });
});

describe('health detail', () => {
  it('keeps the latest reason and detail of each checker, even when the state is unchanged', async () => {
    const { kernel, hc, dp } = setup();
    await kernel.apply(config([{ address: '127.0.0.1:9001' }], { healthChecks: ['manual'] }));
    hc.report('127.0.0.1:9001', { up: true, reason: 'UP', detail: { state: 'UP' } });
    await settle();
    const changes = dp.state.changes.length;
    hc.report('127.0.0.1:9001', {
      up: true,
      reason: 'UP-WARM after inhibit',
      detail: { state: 'UP-WARM', inhibitMs: 10_000 },
    });
    await settle();
    expect(dp.state.changes).toHaveLength(changes); // nothing to recompile
    expect(kernel.health('web')).toEqual({
      '127.0.0.1:9001': {
        manual: {
          up: true,
          reason: 'UP-WARM after inhibit',
          detail: { state: 'UP-WARM', inhibitMs: 10_000 },
        },
      },
    });
    expect(() => kernel.health('nope')).toThrow(
      expect.objectContaining({ code: ErrorCodes.SERVICE_NOT_FOUND }),
    );
  });
});
