import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import sedDefault, { sed, sedPlan } from '../index.js';
import { compilePlan, makeView, validOptions, leastConnectionsCases } from '@fulcrum/testkit';

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
  for (const c of leastConnectionsCases(sed, 'sed', ipvs)) it(c.name, c.run);

  it('is the default export, with no options', () => {
    expect(sedDefault).toBe(sed);
    expect(sed).toMatchObject({ kind: 'scheduler', name: 'sed', kernel: '^0.1.0' });
    expect(validOptions(sed)).toEqual({});
    expect(() => validOptions(sed, { formula: 'lc' })).toThrow(/additionalProperties/);
  });

  it('sends to the big server while it is idle as the small one: (0 + 1) / 10 < (0 + 1) / 1', () => {
    const plan = compilePlan(sed, makeView([1, 10]));
    expect(new PlanExecutor(plan).pick(tuple, () => ({ active: 0, inactive: 0 }))).toBe(1);
  });

  it('has a pure helper for third-party use', () => {
    expect(sedPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'sed',
      weights: [2, 0],
    });
  });
});
