import {
  checkPlan,
  type SchedulePlan,
  type SchedulerInstance,
  type SchedulerPlugin,
  type ServiceView,
} from '@fulcrum/kernel';
import { testContext, validOptions } from './conformance.js';

/** A scheduler instance made as the kernel makes it: options validated, defaults filled. */
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

/** An integer in [min, max] from a PRNG. */
export const randomInt = (rand: () => number, min: number, max: number): number =>
  min + Math.floor(rand() * (max - min + 1));
