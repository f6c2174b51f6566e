import { PlanExecutor, type ConnectionTuple } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import rrDefault, { roundRobinSequence, rr } from '../index.js';
import { compilePlan, prng, randomInt, makeView, validOptions } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};

/** ip_vs_rr_schedule: from the last server on, the next one with weight > 0, wrapping. */
function* ipvsRoundRobin(weights: readonly number[]): Generator<number> {
  let last = -1;
  for (;;) {
    for (let step = 1; step <= weights.length; step++) {
      const i = (last + step) % weights.length;
      if (weights[i]! > 0) {
        last = i;
        yield i;
        break;
      }
    }
  }
}

describe('rr', () => {
  it('is the default export, with no options', () => {
    expect(rrDefault).toBe(rr);
    expect(rr).toMatchObject({ kind: 'scheduler', name: 'rr', kernel: '^0.1.0' });
    expect(validOptions(rr)).toEqual({});
    expect(() => validOptions(rr, { weights: true })).toThrow(/additionalProperties/);
  });

  it.each([
    { weights: [1, 1, 1], sequence: [0, 1, 2] },
    { weights: [5, 1, 100], sequence: [0, 1, 2] },
    { weights: [0, 3, 0, 1], sequence: [1, 3] },
    { weights: [0], sequence: [] },
  ])('weights $weights give $sequence: weights only decide who takes part', ({ weights, sequence }) => {
    expect(compilePlan(rr, makeView(weights))).toEqual({ kind: 'sequence', sequence });
  });

  it('executes as IPVS rr does, for random memberships', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rand = prng(seed);
      const weights = Array.from({ length: randomInt(rand, 1, 30) }, () =>
        rand() < 0.3 ? 0 : randomInt(rand, 1, 10),
      );
      const sequence = roundRobinSequence(weights.map((weight) => ({ weight })));
      const executor = new PlanExecutor({ kind: 'sequence', sequence });
      const count = 3 * weights.length;
      const executed = Array.from({ length: count }, () => executor.pick(tuple));
      if (weights.every((w) => w === 0)) expect(executed.every((i) => i === -1)).toBe(true);
      else {
        const oracle = ipvsRoundRobin(weights);
        expect(executed, `seed ${seed}`).toEqual(Array.from({ length: count }, () => oracle.next().value));
      }
    }
  });

  it('compiles a service without a server of weight > 0 to an empty plan that schedules nothing', () => {
    for (const servers of [[], [0, 0]]) {
      const plan = compilePlan(rr, makeView(servers));
      expect(plan).toEqual({ kind: 'sequence', sequence: [] });
      expect(new PlanExecutor(plan).pick(tuple)).toBe(-1);
    }
  });
});
