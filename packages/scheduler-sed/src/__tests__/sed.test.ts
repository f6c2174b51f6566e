import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import sedDefault, { sed, sedPlan } from '../index.js';
import { compilePlan, prng, randomInt, makeView, validOptions } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};

/** ip_vs_sed_schedule: the first server with weight > 0, then least (active + 1) / weight by cross-multiplication, strictly less replaces. */
function ipvs(weights: readonly number[], loads: readonly ServerLoad[]): number {
  let least = -1;
  let loh = 0;
  weights.forEach((w, i) => {
    if (w === 0) return;
    const doh = loads[i]!.active + 1;
    if (least === -1 || loh * w > doh * weights[least]!) {
      least = i;
      loh = doh;
    }
  });
  return least;
}

describe('sed', () => {
  it('is the default export, with no options', () => {
    expect(sedDefault).toBe(sed);
    expect(sed).toMatchObject({ kind: 'scheduler', name: 'sed', kernel: '^0.1.0' });
    expect(validOptions(sed)).toEqual({});
    expect(() => validOptions(sed, { formula: 'lc' })).toThrow(/additionalProperties/);
  });

  it('compiles the effective weights and the sed formula; the dataplane keeps the counts', () => {
    const view = makeView([3, { weight: 0, configuredWeight: 7, health: 'down' }, 1, 250]);
    expect(compilePlan(sed, view)).toEqual({
      kind: 'least-connections',
      formula: 'sed',
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
      const plan = compilePlan(sed, makeView(weights));
      const picked = new PlanExecutor(plan).pick(tuple, (i) => loads[i]!);
      expect(picked, `seed ${seed}: weights ${weights.join(',')} loads ${JSON.stringify(loads)}`).toBe(
        ipvs(weights, loads),
      );
    }
  });

  it('sends to the big server while it is idle as the small one: (0 + 1) / 10 < (0 + 1) / 1', () => {
    const plan = compilePlan(sed, makeView([1, 10]));
    expect(new PlanExecutor(plan).pick(tuple, () => ({ active: 0, inactive: 0 }))).toBe(1);
  });

  it('compiles a service without a server of weight > 0 to a plan that schedules nothing', () => {
    for (const servers of [[], [0, 0, 0]]) {
      const plan = compilePlan(sed, makeView(servers));
      expect(plan).toEqual({ kind: 'least-connections', formula: 'sed', weights: servers });
      expect(new PlanExecutor(plan).pick(tuple, () => ({ active: 0, inactive: 0 }))).toBe(-1);
    }
  });

  it('has a pure helper for third-party use', () => {
    expect(sedPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'sed',
      weights: [2, 0],
    });
  });
});
