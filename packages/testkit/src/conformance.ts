import {
  checkPlan,
  compileOptionsSchema,
  KERNEL_VERSION,
  ManualClock,
  MetricsRegistry,
  EventBus,
  PluginRegistry,
  silentLogger,
  type AnyPlugin,
  type DataplanePlugin,
  type HealthCheckPlugin,
  type PassthroughPlugin,
  type PluginContext,
  type SchedulerPlugin,
  type ServiceView,
} from '@fulcrum/kernel';
import { isDeepStrictEqual } from 'node:util';
import { PlanSimulator, syntheticAddress } from './simulator.js';
import { makeView } from './views.js';

/** One conformance check: give it to your test runner, `for (const c of cases) it(c.name, c.run)`. */
export interface ConformanceCase {
  name: string;
  run: () => void | Promise<void>;
}

export interface CaseOptions {
  /** Options to create the plugin with (validated and default-filled first); default `{}`. */
  options?: Record<string, unknown>;
}

function fail(message: string): never {
  throw new Error(`conformance: ${message}`);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}

/** A context like the kernel's, with a manual clock, for conformance runs. */
export function testContext(plugin: AnyPlugin, overrides: Partial<PluginContext> = {}): PluginContext {
  return {
    kernelVersion: KERNEL_VERSION,
    plugin: { kind: plugin.kind, name: plugin.name },
    configPath: `conformance.${plugin.kind}`,
    service: { name: 'conformance', protocol: 'tcp', listen: { address: '127.0.0.1', port: 80, family: 4 } },
    logger: silentLogger,
    metrics: new MetricsRegistry(),
    events: new EventBus(),
    clock: new ManualClock(),
    ...overrides,
  };
}

/** Validates options as the kernel does (defaults filled, durations in ms). */
export function validOptions(
  plugin: AnyPlugin,
  options: Record<string, unknown> = {},
): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = compileOptionsSchema(plugin.optionsSchema);
  if (!validate(copy))
    fail(`options ${JSON.stringify(options)} are invalid: ${JSON.stringify(validate.errors)}`);
  return copy;
}

function commonCases(plugin: AnyPlugin, opts: CaseOptions): ConformanceCase[] {
  return [
    {
      name: `${plugin.kind} "${plugin.name}" registers with this kernel (shape, kernel range ${plugin.kernel}, options schema)`,
      run: () => void new PluginRegistry(KERNEL_VERSION).register(plugin, 'conformance'),
    },
    {
      name: 'its options schema is an object schema that fills defaults and refuses unknown keys',
      run: () => {
        const schema = plugin.optionsSchema as { type?: unknown; additionalProperties?: unknown };
        if (schema.type !== 'object') fail('optionsSchema.type must be "object"');
        if (schema.additionalProperties !== false)
          fail('optionsSchema must set additionalProperties: false, so typos are errors');
        validOptions(plugin, opts.options);
      },
    },
    {
      name: 'create() is synchronous, does not mutate its options, and gives a new instance each time',
      run: () => {
        const options = deepFreeze(validOptions(plugin, opts.options));
        const create = plugin.create as (ctx: PluginContext, o: unknown) => unknown;
        const a = create(testContext(plugin), options);
        const b = create(testContext(plugin), options);
        if (!a || typeof a !== 'object') fail('create() must return an object');
        if (typeof (a as Promise<unknown>).then === 'function') fail('create() must not return a promise');
        if (a === b)
          fail('create() returned the same instance twice: instances must not be shared between services');
      },
    },
  ];
}

/** The views every scheduler is compiled against. */
export function standardViews(): [string, ServiceView][] {
  return [
    ['no servers', makeView([])],
    ['all weight 0', makeView([0, 0, 0])],
    ['one server', makeView([1])],
    ['equal weights', makeView([1, 1, 1, 1])],
    ['mixed weights with a 0', makeView([4, 3, 0, 2])],
    ['weights sharing a divisor', makeView([6, 4, 2])],
    [
      'down and draining servers at weight 0',
      makeView([{ weight: 0, health: 'down' }, { weight: 2 }, { weight: 0, draining: true }]),
    ],
    [
      'IPv6 servers',
      makeView([
        { weight: 1, address: '2001:db8::1' },
        { weight: 2, address: '2001:db8::2' },
      ]),
    ],
    ['1,000 servers, weights 1..100', makeView(Array.from({ length: 1000 }, (_, i) => 1 + ((i * 37) % 100)))],
  ];
}

/** Conformance of a scheduler: well-formed, deterministic plans that honour weight 0. */
export function schedulerCases(plugin: SchedulerPlugin<never>, opts: CaseOptions = {}): ConformanceCase[] {
  const instance = () =>
    (plugin.create as (c: PluginContext, o: unknown) => ReturnType<SchedulerPlugin['create']>)(
      testContext(plugin),
      validOptions(plugin, opts.options),
    );
  const cases = standardViews().flatMap(([label, view]): ConformanceCase[] => [
    {
      name: `compiles a well-formed plan for ${label}, without touching the view`,
      run: () => {
        const plan = instance().compile(view); // views are frozen: a mutation throws
        const problems = checkPlan(plan, view.realServers.length);
        if (problems.length) fail(problems.join('; '));
      },
    },
    {
      name: `compiles the same plan twice for ${label} (deterministic)`,
      run: () => {
        if (!isDeepStrictEqual(instance().compile(view), instance().compile(view)))
          fail('two compilations of one view differ');
      },
    },
    {
      name: `never picks a weight-0 server and reaches every other one, for ${label}`,
      run: () => {
        const plan = instance().compile(view);
        const live = view.realServers.filter((r) => r.weight > 0);
        let reached: Set<number>;
        if (plan.kind === 'sequence' || plan.kind === 'hash') {
          // Exact: a server is reachable through a sequence or a uniform hash iff it has an entry.
          reached = new Set((plan.kind === 'sequence' ? plan.sequence : plan.table).filter((i) => i >= 0));
        } else {
          // Least-connections choices depend on live loads: pick as a dataplane would, keeping
          // connections open. Σ weight picks reach every server even for sed/nq, which turn to
          // a weight-1 server only once each heavier one holds about weight − 1 connections.
          const sim = new PlanSimulator(plan);
          const totalWeight = live.reduce((a, r) => a + r.weight, 0);
          const picks = Math.min(500_000, Math.max(2000, view.realServers.length * 200, totalWeight * 2));
          reached = new Set();
          for (let i = 0; i < picks; i++) {
            const conn = sim.connect({ sourceAddress: syntheticAddress(i), sourcePort: 1024 + (i % 60000) });
            if (conn) reached.add(conn.server);
          }
        }
        for (const i of reached)
          if (view.realServers[i]!.weight === 0) fail(`server ${i}, whose weight is 0, can be picked`);
        for (const r of live)
          if (!reached.has(r.index)) fail(`server ${r.index} (weight ${r.weight}) can never be picked`);
      },
    },
  ]);
  return [...commonCases(plugin, opts), ...cases];
}

/** Conformance of a health check: watches start and stop cleanly, close is idempotent. */
export function healthCheckCases(
  plugin: HealthCheckPlugin<never>,
  opts: CaseOptions = {},
): ConformanceCase[] {
  return [
    ...commonCases(plugin, opts),
    {
      name: 'watch() returns a handle whose stop() may be called twice; no verdict arrives after stop',
      run: async () => {
        const clock = new ManualClock();
        const inst = (
          plugin.create as (c: PluginContext, o: unknown) => ReturnType<HealthCheckPlugin['create']>
        )(testContext(plugin, { clock }), validOptions(plugin, opts.options));
        let late = 0;
        let stopped = false;
        const watch = inst.watch(
          {
            service: {
              name: 'conformance',
              protocol: 'tcp',
              listen: { address: '127.0.0.1', port: 80, family: 4 },
            },
            server: '127.0.0.1:9',
            address: '127.0.0.1',
            port: 9,
            weight: 1,
          },
          () => void (stopped && late++),
        );
        if (!watch || typeof watch.stop !== 'function') fail('watch() must return { stop() }');
        watch.stop();
        stopped = true;
        watch.stop();
        clock.advance(3_600_000);
        await new Promise((r) => setTimeout(r, 50));
        if (late) fail(`${late} verdict(s) arrived after stop()`);
        inst.close?.();
        inst.close?.();
      },
    },
  ];
}

/** Conformance of a passthrough: declared requirements, JSON-serialisable settings. */
export function passthroughCases(
  plugin: PassthroughPlugin<never>,
  opts: CaseOptions = {},
): ConformanceCase[] {
  return [
    ...commonCases(plugin, opts),
    {
      name: 'declares the capabilities it requires, and produces JSON-serialisable settings',
      run: () => {
        if (!Array.isArray(plugin.requires) || plugin.requires.some((c) => typeof c !== 'string'))
          fail('requires must be string[]');
        const inst = (
          plugin.create as (c: PluginContext, o: unknown) => ReturnType<PassthroughPlugin['create']>
        )(testContext(plugin), validOptions(plugin, opts.options));
        if (!isDeepStrictEqual(JSON.parse(JSON.stringify(inst.settings)), inst.settings))
          fail('settings must survive a JSON round trip (native dataplanes receive them so)');
      },
    },
  ];
}

/** Conformance of a dataplane: honest capabilities, and an empty start/apply/stop cycle. */
export function dataplaneCases(plugin: DataplanePlugin<never>, opts: CaseOptions = {}): ConformanceCase[] {
  return [
    ...commonCases(plugin, opts),
    {
      name: 'declares at least one of the tcp/udp capabilities',
      run: () => {
        if (!plugin.capabilities.some((c) => c === 'tcp' || c === 'udp'))
          fail('capabilities must include tcp or udp');
      },
    },
    {
      name: 'starts, applies an empty change, and stops',
      run: async () => {
        const { service: _none, ...ctx } = testContext(plugin); // dataplanes serve no single service
        const inst = (
          plugin.create as (c: PluginContext, o: unknown) => ReturnType<DataplanePlugin['create']>
        )(ctx, validOptions(plugin, opts.options));
        await inst.start();
        await inst.apply({ added: [], updated: [], removed: [] });
        await inst.stop();
      },
    },
  ];
}
