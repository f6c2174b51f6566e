import { PlanExecutor, type ConnectionTuple, type ServerLoad } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import wlcDefault, { wlc, wlcPlan } from '../index.js';
import { compilePlan, prng, makeView, validOptions, leastConnectionsCases } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};

/** ip_vs_wlc_schedule: the first server with weight > 0, then any server with loh × w(d) > doh × w(least) replaces it (weight-0 servers are not skipped in that loop, but can never win). */
function ipvs(weights: readonly number[], loads: readonly ServerLoad[]): number {
  let least = weights.findIndex((w) => w > 0);
  if (least === -1) return -1;
  const overhead = (i: number) => loads[i]!.active * 256 + loads[i]!.inactive;
  let loh = overhead(least);
  for (let d = least + 1; d < weights.length; d++) {
    const doh = overhead(d);
    if (loh * weights[d]! > doh * weights[least]!) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

describe('wlc', () => {
  for (const c of leastConnectionsCases(wlc, 'wlc', ipvs)) it(c.name, c.run);

  it('is the default export, with no options', () => {
    expect(wlcDefault).toBe(wlc);
    expect(wlc).toMatchObject({ kind: 'scheduler', name: 'wlc', kernel: '^0.1.0' });
    expect(validOptions(wlc)).toEqual({});
    expect(() => validOptions(wlc, { formula: 'lc' })).toThrow(/additionalProperties/);
  });

  it('shares connections in proportion to weight when connections last alike', () => {
    const weights = [1, 2, 5, 10, 0, 32];
    const plan = compilePlan(wlc, makeView(weights));
    const executor = new PlanExecutor(plan);
    const rand = prng(42);
    const active = weights.map(() => 0);
    const open: number[] = [];
    const picked = weights.map(() => 0);
    for (let c = 0; c < 100_000; c++) {
      // Keep ~500 connections open; a random one of them ends before each new one.
      if (open.length >= 500) {
        const k = Math.floor(rand() * open.length);
        active[open[k]!]!--;
        open[k] = open[open.length - 1]!;
        open.pop();
      }
      const s = executor.pick(tuple, (i) => ({ active: active[i]!, inactive: 0 }));
      active[s]!++;
      open.push(s);
      picked[s]!++;
    }
    const total = weights.reduce((a, b) => a + b, 0);
    expect(picked[4]).toBe(0);
    weights.forEach((w, i) =>
      expect(Math.abs(picked[i]! / 100_000 - w / total), `server ${i}`).toBeLessThan(0.01),
    );
  });

  it('has a pure helper for third-party use', () => {
    expect(wlcPlan([{ weight: 2 }, { weight: 0 }])).toEqual({
      kind: 'least-connections',
      formula: 'wlc',
      weights: [2, 0],
    });
  });
});
