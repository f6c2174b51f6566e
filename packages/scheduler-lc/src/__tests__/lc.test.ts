import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import lcDefault, { lc, lcPlan } from '../index.js';
import { compilePlan, prng, randomInt, makeView, validOptions } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};

/** ip_vs_lc_schedule: skip weight-0 servers; least overhead = active × 256 + inactive, strictly less replaces. */
function ipvs(weights: readonly number[], loads: readonly ServerLoad[]): number {
  let least = -1;
  let loh = 0;
  weights.forEach((w, i) => {
    if (w === 0) return;
    const doh = loads[i]!.active * 256 + loads[i]!.inactive;
    if (least === -1 || doh < loh) {
      least = i;
      loh = doh;
    }
  });
  return least;
}

describe('lc', () => {
  it('is the default export, with no options', () => {
    expect(lcDefault).toBe(lc);
    expect(lc).toMatchObject({ kind: 'scheduler', name: 'lc', kernel: '^0.1.0' });
    expect(validOptions(lc)).toEqual({});
    expect(() => validOptions(lc, { formula: 'lc' })).toThrow(/additionalProperties/);
  });

  it('compiles the effective weights and the lc formula; the dataplane keeps the counts', () => {
    const view = makeView([3, { weight: 0, configuredWeight: 7, health: 'down' }, 1, 250]);
    expect(compilePlan(lc, view)).toEqual({
      kind: 'least-connections',
      formula: 'lc',
      weights: [3, 0, 1, 250],
    });
  });

  it('picks what IPVS picks, for random weights and live counts', () => {
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
      const plan = compilePlan(lc, makeView(weights));
      const picked = new PlanExecutor(plan).pick(tuple, (i) => loads[i]!);
      expect(picked, `seed ${seed}: weights ${weights.join(',')} loads ${JSON.stringify(loads)}`).toBe(
        ipvs(weights, loads),
      );
    }
  });

  it('ignores weights beyond zero / non-zero', () => {
    const plan = compilePlan(lc, makeView([100, 1]));
    const loads = [
      { active: 1, inactive: 0 },
      { active: 2, inactive: 0 },
    ];
    expect(new PlanExecutor(plan).pick(tuple, (i) => loads[i]!)).toBe(0);
    loads[0] = { active: 2, inactive: 1 };
    expect(new PlanExecutor(plan).pick(tuple, (i) => loads[i]!)).toBe(1);
  });

  it('compiles a service without a server of weight > 0 to a plan that schedules nothing', () => {
    for (const servers of [[], [0, 0, 0]]) {
      const plan = compilePlan(lc, makeView(servers));
      expect(plan).toEqual({ kind: 'least-connections', formula: 'lc', weights: servers });
      expect(new PlanExecutor(plan).pick(tuple, () => ({ active: 0, inactive: 0 }))).toBe(-1);
    }
  });

  it('has a pure helper for third-party use', () => {
    expect(lcPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'lc',
      weights: [2, 0],
    });
  });
});
