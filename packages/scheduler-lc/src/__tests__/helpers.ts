// Test helpers shared by this package's tests: a service view, a plugin instantiated the way
// the kernel does it (options validated by ajv with defaults filled in), a seeded PRNG.
import {
  checkPlan,
  compileOptionsSchema,
  EventBus,
  KERNEL_VERSION,
  ManualClock,
  MetricsRegistry,
  silentLogger,
  type PluginContext,
  type RealServerView,
  type SchedulePlan,
  type SchedulerInstance,
  type SchedulerPlugin,
  type ServiceView,
} from '@fulcrum/kernel';

/** A server by weight alone, or with some fields given; addresses are 10.0.x.y:80 by index. */
export type ServerInput = number | (Partial<RealServerView> & { weight: number });

export function serviceView(servers: readonly ServerInput[]): ServiceView {
  const realServers = servers.map((s, index): RealServerView => {
    const given = typeof s === 'number' ? { weight: s } : s;
    const address = given.address ?? `10.0.${index >> 8}.${index & 255}`;
    const port = given.port ?? 80;
    return {
      index,
      key: given.key ?? `${address}:${port}`,
      address,
      port,
      weight: given.weight,
      configuredWeight: given.configuredWeight ?? given.weight,
      health: given.health ?? (given.weight > 0 ? 'up' : 'down'),
      draining: given.draining ?? false,
    };
  });
  return {
    name: 'test',
    protocol: 'tcp',
    listen: { address: '192.0.2.1', port: 80, family: 4 },
    realServers,
  };
}

/** Options as the kernel would hand them: validated, defaults filled in; throws when invalid. */
export function validOptions(
  plugin: SchedulerPlugin<never>,
  options: Record<string, unknown> = {},
): Record<string, unknown> {
  const copy = structuredClone(options);
  const validate = compileOptionsSchema(plugin.optionsSchema);
  if (!validate(copy)) throw new Error(`invalid options: ${JSON.stringify(validate.errors)}`);
  return copy;
}

export function instantiate(
  plugin: SchedulerPlugin<never>,
  options: Record<string, unknown> = {},
): SchedulerInstance {
  const ctx: PluginContext = {
    kernelVersion: KERNEL_VERSION,
    plugin: { kind: 'scheduler', name: plugin.name },
    configPath: 'services[0].scheduler',
    service: { name: 'test', protocol: 'tcp', listen: { address: '192.0.2.1', port: 80, family: 4 } },
    logger: silentLogger,
    metrics: new MetricsRegistry(),
    events: new EventBus(),
    clock: new ManualClock(),
  };
  return plugin.create(ctx, validOptions(plugin, options) as never);
}

/** Compiles through the plugin and checks the plan as the kernel does before using it. */
export function compilePlan(
  plugin: SchedulerPlugin<never>,
  view: ServiceView,
  options: Record<string, unknown> = {},
): SchedulePlan {
  const plan = instantiate(plugin, options).compile(view);
  const problems = checkPlan(plan, view.realServers.length);
  if (problems.length) throw new Error(`malformed plan: ${problems.join('; ')}`);
  return plan;
}

/** mulberry32: a small seeded PRNG, so a failing random case can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const randomInt = (rand: () => number, min: number, max: number): number =>
  min + Math.floor(rand() * (max - min + 1));
