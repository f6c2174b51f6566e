import { isDeepStrictEqual } from 'node:util';
import {
  checkPlan,
  PlanExecutor,
  type LeastConnectionsPlan,
  type ServerLoad,
  type SchedulePlan,
  type SchedulerInstance,
  type SchedulerPlugin,
  type ServiceView,
} from '@fulcrum/kernel';
import { testContext, validOptions, type ConformanceCase } from './conformance.js';
import { makeView } from './views.js';

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

/** A reference implementation of a least-connections choice (e.g. a transcription of ip_vs_wlc_schedule). */
export type LeastConnectionsOracle = (weights: readonly number[], loads: readonly ServerLoad[]) => number;

/**
 * Cases for a scheduler that compiles to a least-connections plan: it carries the effective
 * weights and `formula`, it schedules nothing without a server of weight > 0, and on 2,000
 * random weight and load sets the dataplane's choice is the oracle's.
 */
export function leastConnectionsCases(
  plugin: SchedulerPlugin<never>,
  formula: LeastConnectionsPlan['formula'],
  oracle: LeastConnectionsOracle,
): ConformanceCase[] {
  const tuple = {
    sourceAddress: '198.51.100.7',
    sourcePort: 40000,
    destinationAddress: '192.0.2.1',
    destinationPort: 80,
  };
  return [
    {
      name: `compiles the effective weights and the ${formula} formula; the dataplane keeps the counts`,
      run: () => {
        const view = makeView([3, { weight: 0, configuredWeight: 7, health: 'down' }, 1, 250]);
        const plan = compilePlan(plugin, view);
        if (!isDeepStrictEqual(plan, { kind: 'least-connections', formula, weights: [3, 0, 1, 250] }))
          throw new Error(`unexpected plan ${JSON.stringify(plan)}`);
      },
    },
    {
      name: 'compiles a service without a server of weight > 0 to a plan that schedules nothing',
      run: () => {
        for (const servers of [[], [0, 0, 0]]) {
          const plan = compilePlan(plugin, makeView(servers));
          if (!isDeepStrictEqual(plan, { kind: 'least-connections', formula, weights: servers }))
            throw new Error(`unexpected plan ${JSON.stringify(plan)}`);
          const picked = new PlanExecutor(plan).pick(tuple, () => ({ active: 0, inactive: 0 }));
          if (picked !== -1) throw new Error(`picked ${picked} from ${JSON.stringify(servers)}`);
        }
      },
    },
    {
      name: 'picks what the oracle picks, for 2,000 random weight and load sets',
      run: () => {
        for (let seed = 1; seed <= 2000; seed++) {
          const rand = prng(seed);
          const n = randomInt(rand, 1, 12);
          const weights = Array.from({ length: n }, () =>
            rand() < 0.2 ? 0 : randomInt(rand, 1, seed % 2 ? 5 : 100),
          );
          // Small counts make ties and idle servers common: those are where formulas differ.
          const top = seed % 3 === 0 ? 3 : 1000;
          const loads = weights.map(() => ({
            active: randomInt(rand, 0, top),
            inactive: randomInt(rand, 0, top),
          }));
          const picked = new PlanExecutor(compilePlan(plugin, makeView(weights))).pick(
            tuple,
            (i) => loads[i]!,
          );
          const expected = oracle(weights, loads);
          if (picked !== expected)
            throw new Error(
              `seed ${seed}: weights ${weights.join(',')} loads ${JSON.stringify(loads)}: picked ${picked}, the oracle ${expected}`,
            );
        }
      },
    },
  ];
}
