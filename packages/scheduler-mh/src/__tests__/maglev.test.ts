import { describe, expect, it } from 'vitest';
import { fmix32 } from '@fulcrum/kernel';
import { nameHash } from '../hash.js';
import {
  isPrime,
  maglevPermutation,
  maglevPopulate,
  maglevTable,
  maglevTurns,
  weightBits,
} from '../index.js';
import { prng, randomInt } from '@fulcrum/testkit';

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
const fls = (x: number) => (x === 0 ? 0 : Math.floor(Math.log2(x)) + 1);

/** ip_vs_mh.c's turns: gcd of weights > 0, rshift = fls(mw / gcd) − bits, at least 1 for w > 0. */
function ipvsTurns(weights: readonly number[], bits: number): number[] {
  const g = weights.filter((w) => w > 0).reduce((a, w) => gcd(w, a), 0);
  const mw = Math.max(...weights) / g;
  const rshift = Math.max(0, fls(mw) - bits);
  return weights.map((w) => Math.floor(w / g) >> rshift || (w !== 0 ? 1 : 0));
}

/**
 * The paper's Pseudocode 1 written out plainly: full permutation rows, next[i], and a
 * server's turn repeated `turns[i]` times (ip_vs_mh_populate's dt_count).
 */
function naivePopulate(M: number, perms: { offset: number; skip: number }[], turns: number[]): number[] {
  const permutation = perms.map(({ offset, skip }) =>
    Array.from({ length: M }, (_, j) => (offset + j * skip) % M),
  );
  const next = perms.map(() => 0);
  const entry = new Array<number>(M).fill(-1);
  let n = 0;
  for (;;) {
    for (let i = 0; i < perms.length; i++) {
      for (let t = 0; t < turns[i]!; t++) {
        let c = permutation[i]![next[i]!]!;
        while (entry[c]! >= 0) {
          next[i]!++;
          c = permutation[i]![next[i]!]!;
        }
        entry[c] = i;
        next[i]!++;
        n++;
        if (n === M) return entry;
      }
    }
  }
}

describe('Maglev population', () => {
  it("reproduces the paper's example (Table 1, M = 7) and its table after B1 is removed", () => {
    // B0: offset 3, skip 4; B1: offset 0, skip 2; B2: offset 3, skip 1 → B1 B0 B1 B0 B2 B2 B0.
    expect([...maglevPopulate(7, [3, 0, 3], [4, 2, 1], [1, 1, 1])]).toEqual([1, 0, 1, 0, 2, 2, 0]);
    expect([...maglevPopulate(7, [3, 3], [4, 1], [1, 1])]).toEqual([0, 0, 0, 0, 1, 1, 1]); // B0 B0 B0 B0 B2 B2 B2
  });

  it('matches the plain pseudocode for random permutations, turns and primes', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const rand = prng(seed);
      const M = [7, 13, 251, 509, 1021][seed % 5]!;
      const count = randomInt(rand, 1, Math.min(40, M));
      const perms = Array.from({ length: count }, () => ({
        offset: randomInt(rand, 0, M - 1),
        skip: randomInt(rand, 1, M - 1),
      }));
      const turns = perms.map(() => randomInt(rand, 1, 4));
      const got = maglevPopulate(
        M,
        perms.map((p) => p.offset),
        perms.map((p) => p.skip),
        turns,
      );
      expect([...got], `seed ${seed}`).toEqual(naivePopulate(M, perms, turns));
    }
  });

  it('leaves the table empty (-1) when nobody takes part', () => {
    expect([...maglevPopulate(7, [], [], [])]).toEqual(new Array(7).fill(-1));
    expect([...maglevPopulate(7, [1], [1], [0])]).toEqual(new Array(7).fill(-1));
  });
});

describe('Maglev weights as ip_vs_mh.c', () => {
  it.each([
    [251, 4],
    [509, 4],
    [1021, 5],
    [2039, 5],
    [4093, 6],
    [8191, 6],
    [16381, 7],
    [32749, 7],
    [65521, 8],
    [131071, 8],
    [65537, 8],
  ])('a table of %i slots keeps %i bits of weight, as IP_VS_MH_TAB_BITS', (M, bits) => {
    expect(weightBits(M)).toBe(bits);
  });

  it('gives the turns IPVS gives whenever one round fits the table', () => {
    for (let seed = 1; seed <= 500; seed++) {
      const rand = prng(seed);
      const M = [251, 4093, 65537][seed % 3]!;
      const top = [10, 1000, 65535][seed % 4 === 0 ? 2 : seed % 2]!;
      const factor = seed % 5 === 0 ? randomInt(rand, 2, 9) : 1;
      const weights = Array.from({ length: randomInt(rand, 1, 20) }, () => randomInt(rand, 1, top) * factor);
      const ipvs = ipvsTurns(weights, weightBits(M));
      if (ipvs.reduce((a, b) => a + b, 0) > M) continue;
      expect(maglevTurns(weights, M), `seed ${seed}`).toEqual(ipvs);
    }
  });

  it('shifts further where IPVS would leave servers without a slot', () => {
    const weights = Array.from({ length: 100 }, (_, i) => 1 + (i % 15));
    const M = 251;
    expect(ipvsTurns(weights, weightBits(M)).reduce((a, b) => a + b, 0)).toBeGreaterThan(M);
    const turns = maglevTurns(weights, M);
    expect(turns.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(M);
    const servers = weights.map((weight, i) => ({ key: `10.0.0.${i}:80`, weight }));
    expect(new Set(maglevTable(servers, { tableSize: M })).size).toBe(100);
  });
});

describe('maglevTable', () => {
  const servers = (n: number, weight: (i: number) => number = () => 1) =>
    Array.from({ length: n }, (_, i) => ({ key: `10.0.${i >> 8}.${i & 255}:80`, weight: weight(i) }));
  const shares = (table: readonly number[], n: number) => {
    const counts = new Array<number>(n).fill(0);
    for (const s of table) counts[s]!++;
    return counts.map((c) => c / table.length);
  };

  it('is the pseudocode over servers in name order, with offset = h1(name) mod M and skip = h2(name) mod (M − 1) + 1', () => {
    const list = servers(20, (i) => 1 + (i % 4)).reverse();
    const M = 1021;
    const order = [...list.keys()].sort((a, b) => (list[a]!.key < list[b]!.key ? -1 : 1));
    const perms = order.map((i) => maglevPermutation(list[i]!.key, M));
    for (const p of perms) {
      expect(p.offset).toBeLessThan(M);
      expect(p.skip).toBeGreaterThanOrEqual(1);
      expect(p.skip).toBeLessThan(M);
    }
    const owner = naivePopulate(
      M,
      perms,
      ipvsTurns(
        order.map((i) => list[i]!.weight),
        weightBits(M),
      ),
    );
    expect(maglevTable(list, { tableSize: M })).toEqual(owner.map((o) => order[o]));
  });

  it('fills every slot and gives each server a share close to its weight', () => {
    const weights = (i: number) => [1, 2, 3, 5, 8][i % 5]!;
    const table = maglevTable(servers(10, weights));
    expect(table).toHaveLength(65537);
    expect(table.includes(-1)).toBe(false);
    const total = Array.from({ length: 10 }, (_, i) => weights(i)).reduce((a, b) => a + b, 0);
    shares(table, 10).forEach((share, i) =>
      expect(Math.abs(share / (weights(i) / total) - 1), `server ${i}`).toBeLessThan(0.02),
    );
  });

  it('moves about 1/N of the keys when one of N servers leaves or joins', () => {
    for (const n of [10, 100]) {
      const before = maglevTable(servers(n));
      const gone = Math.floor(n / 2);
      const list = servers(n + 1);
      const keyOf = (i: number) => list[i]!.key;
      const without = servers(n).filter((_, i) => i !== gone);
      const after = maglevTable(without).map((i) => without[i]!.key);
      const moved = before.filter((s, c) => keyOf(s) !== after[c]).length / before.length;
      const share = before.filter((s) => s === gone).length / before.length;
      expect(moved).toBeGreaterThanOrEqual(share); // the leaver's keys must move…
      expect(moved - share, `n=${n}: ${moved} moved, ${share} was the leaver's`).toBeLessThan(0.6 / n); // …and few others
      const joined = maglevTable(list).map((i) => keyOf(i));
      const movedJoin = before.filter((s, c) => keyOf(s) !== joined[c]).length / before.length;
      expect(movedJoin, `n=${n} join`).toBeLessThan(1.6 / n);
    }
  });

  it('depends on the set of servers, not on their order in the service', () => {
    const list = servers(50, (i) => 1 + (i % 3));
    const shuffled = [...list].sort(() => 0).reverse();
    const a = maglevTable(list).map((i) => list[i]!.key);
    const b = maglevTable(shuffled).map((i) => shuffled[i]!.key);
    expect(b).toEqual(a);
  });

  it('keeps a server at weight 0 in the layout: with fallback only its keys move, spread by weight', () => {
    const list = servers(20, (i) => (i < 10 ? 1 : 3));
    const base = maglevTable(list);
    const down = list.map((s, i) => (i === 4 ? { ...s, weight: 0, configuredWeight: s.weight } : s));
    const table = maglevTable(down);
    let moved = 0;
    const wrong: number[] = [];
    const gained = new Array<number>(20).fill(0);
    base.forEach((s, c) => {
      if (s === 4) {
        if (table[c] === 4 || table[c] === -1) wrong.push(c);
        else gained[table[c]!]!++;
        moved++;
      } else if (table[c] !== s) wrong.push(c);
    });
    expect(wrong, 'slots that moved but should not, or did not move but should').toEqual([]);
    expect(moved).toBeGreaterThan(0);
    // Servers of weight 3 should take about three times the keys of weight-1 servers.
    const light = gained.slice(0, 10).reduce((a, b) => a + b, 0) / 9;
    const heavy = gained.slice(10).reduce((a, b) => a + b, 0) / 10;
    expect(heavy / light).toBeGreaterThan(2);
    expect(heavy / light).toBeLessThan(4.5);
  });

  it('refuses the keys of a server at weight 0 without fallback, as IPVS mh without mh-fallback', () => {
    const list = servers(5);
    const base = maglevTable(list);
    const down = list.map((s, i) => (i === 2 ? { ...s, weight: 0, configuredWeight: 1 } : s));
    expect(maglevTable(down, { fallback: false })).toEqual(base.map((s) => (s === 2 ? -1 : s)));
  });

  it('drops a server whose configured weight is 0 too, as if it were absent', () => {
    const list = servers(6);
    const absent = list.filter((_, i) => i !== 3);
    const zero = list.map((s, i) => (i === 3 ? { ...s, weight: 0, configuredWeight: 0 } : s));
    expect(maglevTable(zero).map((i) => zero[i]!.key)).toEqual(
      maglevTable(absent).map((i) => absent[i]!.key),
    );
  });

  it('is empty when no server has weight > 0, even if some keep a place in the layout', () => {
    expect(maglevTable([])).toEqual([]);
    expect(maglevTable([{ key: 'a:1', weight: 0, configuredWeight: 5 }])).toEqual([]);
  });

  it('refuses a table size that is not a prime, or too small for the servers', () => {
    expect(() => maglevTable(servers(2), { tableSize: 65536 })).toThrow(/not a prime/);
    expect(() => maglevTable(servers(8), { tableSize: 7 })).toThrow(/do not fit/);
    expect([2, 3, 7, 251, 65537, 131071].every(isPrime)).toBe(true);
    expect([0, 1, 4, 9, 65535, 65536, 4194304].some(isPrime)).toBe(false);
  });
});

describe('the mh contract: tables that balancers of every version agree on', () => {
  it('hashes server names with FNV-1a + fmix32, UTF-8 for non-ASCII names too', () => {
    expect(nameHash('10.0.0.1:80', 0)).toBe(3629747543);
    expect(nameHash('10.0.0.1:80', 1)).toBe(3614858247);
    expect(nameHash('[2001:db8::1]:443', 0)).toBe(3789495247);
    let h = (0x811c9dc5 ^ fmix32(7)) >>> 0;
    for (const b of new TextEncoder().encode('srv-é:80')) h = Math.imul(h ^ b, 0x01000193);
    expect(nameHash('srv-é:80', 7)).toBe(fmix32(h));
  });

  it('builds the same table for the same servers, release after release', () => {
    const servers = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '[2001:db8::1]:80'].map((key, i) => ({
      key,
      weight: i + 1,
    }));
    expect(maglevTable(servers, { tableSize: 251 }).slice(0, 40)).toEqual([
      3, 3, 3, 2, 3, 2, 3, 1, 3, 2, 1, 2, 3, 2, 3, 1, 3, 2, 2, 0, 1, 3, 2, 3, 1, 3, 2, 2, 0, 3, 2, 2, 1, 3, 0,
      2, 1, 1, 2, 2,
    ]);
  });
});
