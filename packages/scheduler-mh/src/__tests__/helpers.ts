// Test helpers shared by this package's tests. Contexts and option validation come from
// @fulcrum/testkit; views are built here because schedulers that keep a server's place by its
// configured weight need views whose effective and configured weights differ.
import {
  checkPlan,
  type RealServerView,
  type SchedulePlan,
  type SchedulerInstance,
  type SchedulerPlugin,
  type ServiceView,
} from '@fulcrum/kernel';
import { testContext, validOptions } from '@fulcrum/testkit';

export { validOptions };

/** A server by weight alone, or with some fields given; addresses are 10.0.x.y:80 by index. */
export type ServerInput = number | (Partial<RealServerView> & { weight: number });

export function serviceView(servers: readonly ServerInput[]): ServiceView {
  const realServers = servers.map((s, index): RealServerView => {
    const given = typeof s === 'number' ? { weight: s } : s;
    const address = given.address ?? `10.0.${index >> 8}.${index & 255}`;
    const port = given.port ?? 80;
    return Object.freeze({
      index,
      key: given.key ?? `${address}:${port}`,
      address,
      port,
      weight: given.weight,
      configuredWeight: given.configuredWeight ?? given.weight,
      health: given.health ?? (given.weight > 0 ? 'up' : 'down'),
      draining: given.draining ?? false,
    });
  });
  return Object.freeze({
    name: 'test',
    protocol: 'tcp',
    listen: Object.freeze({ address: '192.0.2.1', port: 80, family: 4 }),
    realServers: Object.freeze(realServers),
  });
}

export function instantiate(
  plugin: SchedulerPlugin<never>,
  options: Record<string, unknown> = {},
): SchedulerInstance {
  const ctx = testContext(plugin, { configPath: 'services[0].scheduler' });
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
