import { describe, expect, it } from 'vitest';
import { IdMap, MemberSet } from '../collections.js';

// The churn-proof collections must behave as the Set and Map they replace: checked against
// them over long random sequences (a fixed seed, so that a failure repeats).

function random(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Member {
  n: number;
  a: number;
  b: number;
}

const inA = { get: (m: Member) => m.a, set: (m: Member, i: number) => void (m.a = i) };
const inB = { get: (m: Member) => m.b, set: (m: Member, i: number) => void (m.b = i) };

describe('MemberSet', () => {
  it('holds what a Set holds over 20,000 random adds and deletes, a member in two sets at once', () => {
    const rnd = random(1);
    const members = Array.from({ length: 300 }, (_, n) => ({ n, a: -1, b: -1 }));
    const a = new MemberSet<Member>(inA);
    const b = new MemberSet<Member>(inB);
    const refA = new Set<Member>();
    const refB = new Set<Member>();
    for (let k = 0; k < 20_000; k++) {
      const m = members[Math.floor(rnd() * members.length)]!;
      const [set, ref] = rnd() < 0.5 ? [a, refA] : [b, refB];
      if (rnd() < 0.55) {
        set.add(m);
        ref.add(m);
      } else {
        expect(set.delete(m)).toBe(ref.delete(m));
      }
      if (k % 500 === 0) {
        expect(new Set(a)).toEqual(refA);
        expect(new Set(b)).toEqual(refB);
      }
    }
    expect(a.size).toBe(refA.size);
    expect(b.size).toBe(refB.size);
    for (const m of members) {
      expect(a.has(m)).toBe(refA.has(m));
      expect(b.has(m)).toBe(refB.has(m));
    }
  });

  it('may be changed while it is walked: members that left are skipped, each other one is seen once', () => {
    const members = Array.from({ length: 10 }, (_, n) => ({ n, a: -1, b: -1 }));
    const set = new MemberSet<Member>(inA);
    for (const m of members) set.add(m);
    const seen: number[] = [];
    for (const m of set) {
      seen.push(m.n);
      if (m.n === 0) {
        // The one walked, two not walked yet (swap-removes move others around), and a new one.
        set.delete(m);
        set.delete(members[5]!);
        set.delete(members[7]!);
        set.add({ n: 99, a: -1, b: -1 });
      }
    }
    expect(seen).toEqual([0, 1, 2, 3, 4, 6, 8, 9]);
    expect([...set].map((m) => m.n).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 6, 8, 9, 99]);
  });
});

describe('IdMap', () => {
  it('maps what a Map maps over 50,000 random sets, gets and deletes, growing and shrinking', () => {
    const rnd = random(7);
    const map = new IdMap<number>();
    const ref = new Map<number, number>();
    // Ids as the relay makes them (2^38 + sequence) × threads + thread, and colliding low
    // 32 bits (multiples of 2^32), so that probes run long and wrap around.
    const pool = [
      ...Array.from({ length: 2_000 }, (_, i) => (2 ** 38 + i) * 2 + (i % 2)),
      ...Array.from({ length: 200 }, (_, i) => (i + 1) * 2 ** 32),
      ...Array.from({ length: 200 }, (_, i) => i + 1),
    ];
    for (let k = 0; k < 50_000; k++) {
      // Phases that fill up and empty out, so that the table grows and shrinks.
      const fill = Math.floor(k / 5_000) % 2 === 0 ? 0.7 : 0.3;
      const id = pool[Math.floor(rnd() * pool.length)]!;
      const r = rnd();
      if (r < fill) {
        map.set(id, k);
        ref.set(id, k);
      } else if (r < fill + 0.1) {
        expect(map.get(id)).toBe(ref.get(id));
        expect(map.has(id)).toBe(ref.has(id));
      } else {
        expect(map.delete(id)).toBe(ref.delete(id));
      }
      expect(map.size).toBe(ref.size);
    }
    for (const id of pool) expect(map.get(id)).toBe(ref.get(id));
    map.clear();
    expect(map.size).toBe(0);
    for (const id of pool) expect(map.get(id)).toBeUndefined();
  });
});
