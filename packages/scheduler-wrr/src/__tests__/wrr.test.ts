import { PlanExecutor, type ConnectionTuple } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import wrrDefault, { DEFAULT_MAX_SEQUENCE_LENGTH, wrr, wrrSequence } from '../index.js';
import { compilePlan, prng, randomInt, makeView, validOptions } from '@fulcrum/testkit';

const tuple: ConnectionTuple = {
  sourceAddress: '198.51.100.7',
  sourcePort: 40000,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
};
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/** The loop exactly as issue 5 states IPVS's wrr: cw starts at 0, i at -1. */
function* issueLoop(weights: readonly number[]): Generator<number> {
  const n = weights.length;
  const mw = Math.max(...weights);
  const di = weights.filter((w) => w > 0).reduce((g, w) => gcd(w, g), 0);
  let i = -1;
  let cw = 0;
  for (;;) {
    i = (i + 1) % n;
    if (i === 0) {
      cw -= di;
      if (cw <= 0) cw = mw;
    }
    if (weights[i]! >= cw) yield i;
  }
}

/**
 * ip_vs_wrr.c as the kernel runs it: mw reduced by (di − 1) so the last pass is cw = 1,
 * cw starting at mw from the list head, a pass ending when the cursor wraps to the head.
 */
function* kernelLoop(weights: readonly number[]): Generator<number> {
  const di = weights.filter((w) => w > 0).reduce((g, w) => gcd(w, g), 0) || 1;
  const mw = Math.max(...weights) - (di - 1);
  let cw = mw;
  let cl = -1; // the list head
  for (;;) {
    let found = -1;
    while (found < 0) {
      for (let d = cl + 1; d < weights.length; d++) {
        if (weights[d]! >= cw) {
          found = d;
          break;
        }
      }
      if (found >= 0) break;
      cl = -1;
      cw -= di;
      if (cw <= 0) cw = mw;
    }
    cl = found;
    yield found;
  }
}

const take = (gen: Generator<number>, count: number) =>
  Array.from({ length: count }, () => gen.next().value as number);

function picks(sequence: readonly number[], count: number): number[] {
  const executor = new PlanExecutor({ kind: 'sequence', sequence });
  return Array.from({ length: count }, () => executor.pick(tuple));
}

describe('wrrSequence: IPVS interleaved weighted round robin', () => {
  it.each([
    { weights: [4, 3, 2], sequence: [0, 0, 1, 0, 1, 2, 0, 1, 2] },
    { weights: [1, 1, 1], sequence: [0, 1, 2] },
    { weights: [2, 1], sequence: [0, 0, 1] },
    { weights: [6, 4], sequence: [0, 0, 1, 0, 1] },
    { weights: [1, 3], sequence: [1, 1, 0, 1] },
    { weights: [0, 5, 0], sequence: [1] },
    { weights: [3, 0, 3], sequence: [0, 2] },
    { weights: [5], sequence: [0] },
    { weights: [0, 0], sequence: [] },
    { weights: [], sequence: [] },
  ])('$weights → $sequence', ({ weights, sequence }) => {
    expect(wrrSequence(weights)).toEqual(sequence);
  });

  it('A=4, B=3, C=2 gives A A B A B C A B C, cycle after cycle, through the executor', () => {
    const names = picks(wrrSequence([4, 3, 2]), 18).map((i) => 'ABC'[i]);
    expect(names.join(' ')).toBe('A A B A B C A B C A A B A B C A B C');
  });

  it('reproduces the IPVS loop for 600 random weight sets, over three cycles', () => {
    for (let seed = 1; seed <= 600; seed++) {
      const rand = prng(seed);
      const n = randomInt(rand, 1, 24);
      const factor = seed % 3 === 0 ? randomInt(rand, 2, 12) : 1; // common divisors exercise di
      const top = seed % 5 === 0 ? 1000 : 100;
      const weights = Array.from({ length: n }, () => (rand() < 0.15 ? 0 : randomInt(rand, 1, top) * factor));
      if (!weights.some((w) => w > 0)) weights[randomInt(rand, 0, n - 1)] = factor;

      const sequence = wrrSequence(weights);
      const di = weights.filter((w) => w > 0).reduce((g, w) => gcd(w, g), 0);
      const cycle = weights.reduce((s, w) => s + w / di, 0);
      expect(sequence.length, `seed ${seed}`).toBe(cycle);
      const executed = picks(sequence, 3 * cycle);
      expect(executed, `seed ${seed} weights ${weights.join(',')}`).toEqual(
        take(issueLoop(weights), 3 * cycle),
      );
      expect(executed, `seed ${seed} (kernel loop)`).toEqual(take(kernelLoop(weights), 3 * cycle));
    }
  });

  it('gives each server exactly weight/gcd entries per cycle', () => {
    const weights = [100, 37, 1, 0, 64, 99];
    const counts = new Map<number, number>();
    for (const i of wrrSequence(weights)) counts.set(i, (counts.get(i) ?? 0) + 1);
    expect([...weights.keys()].map((i) => counts.get(i) ?? 0)).toEqual(weights);
  });

  it('compiles 1,000 servers with weights up to 65535 without walking mw × n steps', () => {
    const rand = prng(7);
    const weights = Array.from({ length: 1000 }, () => randomInt(rand, 1, 65535));
    const sequence = wrrSequence(weights);
    expect(sequence.length).toBeLessThanOrEqual(DEFAULT_MAX_SEQUENCE_LENGTH);
    expect(new Set(sequence).size).toBe(1000);
  });

  it('scales a cycle longer than maxLength down, keeping every server and the proportions', () => {
    const weights = [65535, 30000, 1, 0, 12345];
    const sequence = wrrSequence(weights, 1024);
    expect(sequence.length).toBeLessThanOrEqual(1024);
    const counts = weights.map((_, i) => sequence.filter((s) => s === i).length);
    expect(counts[3]).toBe(0);
    expect(counts[2]).toBeGreaterThanOrEqual(1);
    const total = weights.reduce((a, b) => a + b, 0);
    for (const i of [0, 1, 4])
      expect(Math.abs(counts[i]! / sequence.length - weights[i]! / total)).toBeLessThan(0.01);
    // The scaled plan is still an IPVS order: that of the scaled weights.
    expect(wrrSequence(counts)).toEqual(sequence);
  });

  it('keeps every server when there are more servers than maxLength allows', () => {
    const weights = Array.from({ length: 2000 }, (_, i) => 1 + (i % 7));
    const sequence = wrrSequence(weights, 1024);
    expect(sequence).toEqual([...weights.keys()]);
  });
});

describe('wrr plugin', () => {
  it('is the default export and declares its kernel range', () => {
    expect(wrrDefault).toBe(wrr);
    expect(wrr).toMatchObject({ kind: 'scheduler', name: 'wrr', kernel: '^0.1.0' });
  });

  it('fills maxSequenceLength from the schema and rejects unknown or out-of-range options', () => {
    expect(validOptions(wrr)).toEqual({ maxSequenceLength: DEFAULT_MAX_SEQUENCE_LENGTH });
    expect(() => validOptions(wrr, { weights: [1] })).toThrow(/additionalProperties/);
    expect(() => validOptions(wrr, { maxSequenceLength: 10 })).toThrow(/minimum/);
  });

  it('compiles effective weights into a sequence plan', () => {
    const view = makeView([4, { weight: 0, configuredWeight: 5, health: 'down' }, 3, 2]);
    expect(compilePlan(wrr, view)).toEqual({ kind: 'sequence', sequence: [0, 0, 2, 0, 2, 3, 0, 2, 3] });
  });

  it('compiles a service without a server of weight > 0 to an empty plan that schedules nothing', () => {
    for (const servers of [[], [0, 0, 0]]) {
      const plan = compilePlan(wrr, makeView(servers));
      expect(plan).toEqual({ kind: 'sequence', sequence: [] });
      expect(new PlanExecutor(plan).pick(tuple)).toBe(-1);
    }
  });

  it('honours maxSequenceLength', () => {
    const plan = compilePlan(wrr, makeView([65535, 65534, 3]), { maxSequenceLength: 2048 });
    expect(plan.kind === 'sequence' && plan.sequence.length).toBeLessThanOrEqual(2048);
  });
});
