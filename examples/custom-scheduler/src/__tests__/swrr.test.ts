import { schedulerCases, makeView, PlanSimulator } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { smoothSequence, swrr } from '../index.js';

describe('smooth weighted round-robin', () => {
  it("follows nginx's documented order: weights 5, 1, 1 → a a b a c a a", () => {
    expect(smoothSequence(makeView([5, 1, 1]))).toEqual([0, 0, 1, 0, 2, 0, 0]);
  });

  it('skips weight-0 servers and divides weights by their gcd', () => {
    expect(smoothSequence(makeView([0, 4, 2]))).toEqual([1, 2, 1]);
    expect(smoothSequence(makeView([0, 0]))).toEqual([]);
  });

  it('keeps shares equal to weights over a cycle, and caps the cycle', () => {
    const view = makeView([7, 3, 11, 1]);
    const sim = new PlanSimulator({ kind: 'sequence', sequence: smoothSequence(view) });
    expect(sim.distribution(22 * 100, 4)).toEqual([700, 300, 1100, 100]);
    const big = smoothSequence(makeView([100_000, 1]), 1000);
    expect(big.length).toBeLessThanOrEqual(1001);
    expect(big.filter((i) => i === 1)).toHaveLength(1);
  });
});

describe('conformance', () => {
  for (const c of schedulerCases(swrr)) it(c.name, c.run);
});
