import { describe, expect, it } from 'vitest';
import { checkPlan, planHash, PlanExecutor, type ConnectionTuple } from '../index.js';

const tuple = (src: string, sport = 40000): ConnectionTuple => ({
  sourceAddress: src,
  sourcePort: sport,
  destinationAddress: '10.0.0.1',
  destinationPort: 80,
});

describe('checkPlan', () => {
  it.each([
    [{ kind: 'sequence', sequence: [0, 1, 0] }, 2, []],
    [{ kind: 'sequence', sequence: [] }, 0, []],
    [{ kind: 'hash', fields: ['source-address'], table: [0, -1, 1] }, 2, []],
    [{ kind: 'least-connections', formula: 'wlc', weights: [1, 0] }, 2, []],
  ])('accepts %j', (plan, n, problems) => expect(checkPlan(plan, n)).toEqual(problems));

  it.each([
    [null, 1, /must be an object/],
    [{ kind: 'magic' }, 1, /kind must be one of/],
    [{ kind: 'sequence', sequence: [0, 2] }, 2, /sequence\[1\] = 2 is not a server index/],
    [{ kind: 'sequence', sequence: [-1] }, 2, /sequence\[0\] = -1/],
    [{ kind: 'sequence', sequence: [0.5] }, 2, /sequence\[0\]/],
    [{ kind: 'hash', fields: [], table: [0] }, 1, /at least one field/],
    [{ kind: 'hash', fields: ['mac'], table: [0] }, 1, /unknown hash field "mac"/],
    [{ kind: 'least-connections', formula: 'wlc', weights: [1] }, 2, /one entry per server/],
    [{ kind: 'least-connections', formula: 'fastest', weights: [1] }, 1, /formula must be one of/],
    [{ kind: 'least-connections', formula: 'lc', weights: [-1] }, 1, /integers >= 0/],
  ])('refuses %j', (plan, n, re) => expect(checkPlan(plan, n).join('; ')).toMatch(re));
});

describe('planHash', () => {
  // Vectors from an independent implementation of the definition (Python's ipaddress for
  // the bytes); every dataplane, native ones included, must reproduce them.
  it.each([
    [['source-address'], '192.168.1.7', 40000, 1732467182],
    [['source-address', 'source-port'], '10.1.2.3', 0x1234, 200941749],
    [['source-address'], '2001:db8::1', 40000, 4279221231],
    [['source-address'], '2001:DB8:0:0:0:0:0:1', 40000, 4279221231],
    [['source-address'], '::ffff:10.0.0.1', 40000, 1408760293],
    [['destination-port'], '1.1.1.1', 40000, 1241137014],
  ] as const)('planHash(%j) of %s port %d is %d', (fields, src, sport, expected) => {
    expect(planHash(fields, tuple(src, sport))).toBe(expected);
  });

  it('spreads consecutive addresses evenly over a small table', () => {
    const buckets = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++)
      buckets[planHash(['source-address'], tuple(`10.0.${i >> 8}.${i & 255}`)) % 7]++;
    for (const b of buckets) expect(Math.abs(b - 1000)).toBeLessThan(150);
  });
});

describe('PlanExecutor', () => {
  it('walks a sequence with its own cursor and restarts on swap', () => {
    const ex = new PlanExecutor({ kind: 'sequence', sequence: [0, 0, 1] });
    const picks = Array.from({ length: 5 }, () => ex.pick(tuple('1.1.1.1')));
    expect(picks).toEqual([0, 0, 1, 0, 0]);
    ex.swap({ kind: 'sequence', sequence: [1, 0] });
    expect(ex.pick(tuple('1.1.1.1'))).toBe(1);
  });

  it('schedules nothing from an empty plan', () => {
    expect(new PlanExecutor({ kind: 'sequence', sequence: [] }).pick(tuple('1.1.1.1'))).toBe(-1);
    expect(
      new PlanExecutor({ kind: 'hash', fields: ['source-address'], table: [] }).pick(tuple('1.1.1.1')),
    ).toBe(-1);
    expect(
      new PlanExecutor({ kind: 'least-connections', formula: 'wlc', weights: [0, 0] }).pick(tuple('1.1.1.1')),
    ).toBe(-1);
  });

  it('looks hash plans up by planHash modulo the table size', () => {
    const table = [0, 1, 2, -1, 1];
    const ex = new PlanExecutor({ kind: 'hash', fields: ['source-address'], table });
    for (const src of ['1.2.3.4', '5.6.7.8', '2001:db8::7']) {
      expect(ex.pick(tuple(src))).toBe(table[planHash(['source-address'], tuple(src)) % table.length]);
    }
  });

  const loads = (l: [number, number][]) => (i: number) => ({ active: l[i]![0], inactive: l[i]![1] });
  it.each([
    // IPVS wlc: overhead = active*256 + inactive, least overhead/weight, first wins ties.
    [
      'wlc',
      [1, 2],
      [
        [1, 0],
        [1, 0],
      ],
      1,
    ],
    [
      'wlc',
      [1, 1],
      [
        [1, 0],
        [1, 0],
      ],
      0,
    ],
    [
      'wlc',
      [1, 3],
      [
        [1, 0],
        [4, 0],
      ],
      0,
    ], // 256/1 < 1024/3
    [
      'wlc',
      [1, 3],
      [
        [1, 0],
        [2, 0],
      ],
      1,
    ], // 512/3 < 256/1
    [
      'wlc',
      [0, 1],
      [
        [0, 0],
        [9, 9],
      ],
      1,
    ], // weight 0 is never chosen
    [
      'lc',
      [1, 100],
      [
        [0, 5],
        [0, 1],
      ],
      1,
    ], // lc ignores weights
    [
      'lc',
      [1, 1],
      [
        [1, 0],
        [0, 255],
      ],
      1,
    ], // 256 > 255
    [
      'sed',
      [1, 2],
      [
        [0, 0],
        [1, 0],
      ],
      0,
    ], // (0+1)/1 = 1 vs (1+1)/2 = 1: tie → first
    [
      'sed',
      [1, 3],
      [
        [0, 0],
        [1, 0],
      ],
      1,
    ], // 1 vs 2/3
    [
      'nq',
      [1, 5],
      [
        [3, 0],
        [0, 0],
      ],
      1,
    ], // an idle server first
    [
      'nq',
      [1, 5],
      [
        [1, 0],
        [2, 0],
      ],
      1,
    ], // else as sed: 2/1 vs 3/5
  ] as const)('%s weights %j loads %j → %d', (formula, weights, l, expected) => {
    const ex = new PlanExecutor({ kind: 'least-connections', formula, weights: [...weights] });
    expect(ex.pick(tuple('1.1.1.1'), loads(l as unknown as [number, number][]))).toBe(expected);
  });
});
