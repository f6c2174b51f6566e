import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import nqDefault, { nq, nqPlan } from '../index.js';
import { compilePlan, makeView, validOptions, leastConnectionsCases } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};

/** ip_vs_nq_schedule: skip weight-0 servers; an idle one (no active connection) is returned at once; else least (active + 1) / weight. */
function ipvs(weights: readonly number[], loads: readonly ServerLoad[]): number {
  let least = -1;
  let loh = 0;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (w === 0) continue;
    const doh = loads[i]!.active + 1;
    if (loads[i]!.active === 0) return i;
    if (least === -1 || loh * w > doh * weights[least]!) {
      least = i;
      loh = doh;
    }
  }
  return least;
}

describe('nq', () => {
  for (const c of leastConnectionsCases(nq, 'nq', ipvs)) it(c.name, c.run);

  it('is the default export, with no options', () => {
    expect(nqDefault).toBe(nq);
    expect(nq).toMatchObject({ kind: 'scheduler', name: 'nq', kernel: '^0.1.0' });
    expect(validOptions(nq)).toEqual({});
    expect(() => validOptions(nq, { formula: 'lc' })).toThrow(/additionalProperties/);
  });

  it('prefers an idle server over a faster busy one', () => {
    const plan = compilePlan(nq, makeView([100, 1]));
    const loads = [
      { active: 1, inactive: 0 },
      { active: 0, inactive: 0 },
    ];
    expect(new PlanExecutor(plan).pick(tuple, (i) => loads[i]!)).toBe(1);
  });

  it('has a pure helper for third-party use', () => {
    expect(nqPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'nq',
      weights: [2, 0],
    });
  });
});
