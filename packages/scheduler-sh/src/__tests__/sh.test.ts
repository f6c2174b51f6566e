import { PlanExecutor, planHash, type ConnectionTuple, type HashPlan } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import shDefault, { sh, sourceHashTable } from '../index.js';
import { compilePlan, prng, randomInt, makeView, validOptions } from '@fulcrum/testkit';

const tuple = (sourceAddress: string, sourcePort = 40000): ConnectionTuple => ({
  sourceAddress,
  sourcePort,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
});
const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * ip_vs_sh_reassign over a table of `size` buckets: walk the servers in order, wrapping,
 * each filling `weight` consecutive buckets before the next one takes over.
 */
function ipvsReassign(weights: readonly number[], size: number): number[] {
  const table: number[] = [];
  let p = 0;
  let count = 0;
  for (let i = 0; i < size; i++) {
    table.push(p);
    if (++count >= weights[p]!) {
      p = (p + 1) % weights.length;
      count = 0;
    }
  }
  return table;
}

describe('sourceHashTable', () => {
  it.each([
    { weights: [1, 2, 3], table: [0, 1, 1, 2, 2, 2] },
    { weights: [2, 4], table: [0, 1, 1] },
    { weights: [0, 1, 0, 1], table: [1, 3] },
    { weights: [7], table: [0] },
    { weights: [0, 0], table: [] },
    { weights: [], table: [] },
  ])('weights $weights → $table', ({ weights, table }) => {
    expect(sourceHashTable(weights.map((weight) => ({ weight })))).toEqual(table);
  });

  it("is one cycle of IPVS's fill, by weight / gcd, for random weights", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed);
      const factor = seed % 3 === 0 ? randomInt(rand, 2, 6) : 1;
      const weights = Array.from({ length: randomInt(rand, 1, 30) }, () => randomInt(rand, 1, 100) * factor);
      const g = weights.reduce((a, w) => gcd(w, a), 0);
      const reduced = weights.map((w) => w / g);
      const size = reduced.reduce((a, b) => a + b, 0);
      expect(sourceHashTable(weights.map((weight) => ({ weight }))), `seed ${seed}`).toEqual(
        ipvsReassign(reduced, size),
      );
    }
  });

  it('scales weights down past maxTableSize, every server keeping a slot and its proportion', () => {
    const weights = [65535, 40000, 1, 20000];
    const table = sourceHashTable(
      weights.map((weight) => ({ weight })),
      { maxTableSize: 1024 },
    );
    expect(table.length).toBeLessThanOrEqual(1024);
    const counts = weights.map((_, i) => table.filter((s) => s === i).length);
    expect(counts[2]).toBe(1);
    expect(Math.abs(counts[0]! / counts[1]! - 65535 / 40000)).toBeLessThan(0.01);
  });

  it('keeps a server at weight 0 in the layout: with fallback only its keys move, spread by weight', () => {
    const servers = Array.from({ length: 12 }, (_, i) => ({ weight: i < 6 ? 1 : 3 }));
    const base = sourceHashTable(servers);
    const down = servers.map((s, i) => (i === 7 ? { weight: 0, configuredWeight: 3 } : s));
    const table = sourceHashTable(down);
    expect(table).toHaveLength(base.length);
    const wrong = base.flatMap((s, c) =>
      (s === 7 ? table[c] === 7 || table[c] === -1 : table[c] !== s) ? [c] : [],
    );
    expect(wrong).toEqual([]);
    const gained = new Array<number>(12).fill(0);
    base.forEach((s, c) => s === 7 && gained[table[c]!]!++);
    expect(gained.reduce((a, b) => a + b, 0)).toBe(3);
  });

  it('refuses the keys of a server at weight 0 without fallback, as IPVS sh without sh-fallback', () => {
    const servers = [{ weight: 2 }, { weight: 0, configuredWeight: 2 }, { weight: 1 }];
    expect(sourceHashTable(servers, { fallback: false })).toEqual([0, 0, -1, -1, 2]);
  });

  it('is empty when no server has weight > 0, even if some keep a place in the layout', () => {
    expect(sourceHashTable([{ weight: 0, configuredWeight: 4 }])).toEqual([]);
  });
});

describe('sh plugin', () => {
  it('is the default export and fills its options from the schema', () => {
    expect(shDefault).toBe(sh);
    expect(sh).toMatchObject({ kind: 'scheduler', name: 'sh', kernel: '^0.1.0' });
    expect(validOptions(sh)).toEqual({ fields: ['source-address'], fallback: true, maxTableSize: 65536 });
    expect(() => validOptions(sh, { fields: ['source-address', 'source-address'] })).toThrow(
      /uniqueItems|duplicate/,
    );
    expect(() => validOptions(sh, { tableSize: 256 })).toThrow(/additionalProperties/);
  });

  it('compiles a hash plan over the configured fields', () => {
    const plan = compilePlan(sh, makeView([1, 0, 2]), { fields: ['source-address', 'source-port'] });
    expect(plan).toEqual({ kind: 'hash', fields: ['source-address', 'source-port'], table: [0, 2, 2] });
  });

  it('sends a client address to one server, whatever its port, while membership is stable', () => {
    const view = makeView([1, 2, 3, 4]);
    const plan = compilePlan(sh, view) as HashPlan;
    const executor = new PlanExecutor(plan);
    const again = new PlanExecutor(compilePlan(sh, view));
    for (let i = 0; i < 300; i++) {
      const s = executor.pick(tuple(`203.0.113.${i % 256}`, 1024 + i));
      expect(s).toBe(
        plan.table[planHash(['source-address'], tuple(`203.0.113.${i % 256}`)) % plan.table.length],
      );
      expect(again.pick(tuple(`203.0.113.${i % 256}`, 60000 - i))).toBe(s);
    }
  });

  it('spreads client addresses in proportion to weight', () => {
    const weights = [1, 2, 3, 4];
    const executor = new PlanExecutor(compilePlan(sh, makeView(weights)));
    const counts = [0, 0, 0, 0];
    const n = 100_000;
    for (let i = 0; i < n; i++)
      counts[executor.pick(tuple(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`))]!++;
    weights.forEach((w, i) => expect(Math.abs(counts[i]! / n - w / 10), `server ${i}`).toBeLessThan(0.01));
  });

  it('compiles a service without a server of weight > 0 to an empty table that schedules nothing', () => {
    for (const servers of [[], [0, 0]]) {
      const plan = compilePlan(sh, makeView(servers));
      expect(plan).toEqual({ kind: 'hash', fields: ['source-address'], table: [] });
      expect(new PlanExecutor(plan).pick(tuple('203.0.113.1'))).toBe(-1);
    }
  });
});
