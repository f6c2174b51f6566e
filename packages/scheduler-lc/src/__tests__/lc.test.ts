import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import lcDefault, { lc, lcPlan } from '../index.js';
import { compilePlan, makeView, validOptions, leastConnectionsCases } from '@fulcrum/testkit';

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
  for (const c of leastConnectionsCases(lc, 'lc', ipvs)) it(c.name, c.run);

  it('is the default export, with no options', () => {
    expect(lcDefault).toBe(lc);
    expect(lc).toMatchObject({ kind: 'scheduler', name: 'lc', kernel: '^0.1.0' });
    expect(validOptions(lc)).toEqual({});
    expect(() => validOptions(lc, { formula: 'lc' })).toThrow(/additionalProperties/);
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

  it('has a pure helper for third-party use', () => {
    expect(lcPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'lc',
      weights: [2, 0],
    });
  });
});
