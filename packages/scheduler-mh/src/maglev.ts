import { resolveUnavailable } from '@fulcrum/kernel';
import { nameHash } from './hash.js';

/** What Maglev needs of a real server; RealServerView has it. */
export interface MaglevServer {
  /** `address:port`: the name hashed into the server's permutation. */
  readonly key: string;
  /** Effective weight; 0 takes no new connection. */
  readonly weight: number;
  /**
   * Configured weight: a server at weight 0 whose configured weight is > 0 keeps its place
   * in the table (IPVS keeps it through `last_weight`), so a health flap moves only its keys.
   */
  readonly configuredWeight?: number;
}

export interface MaglevOptions {
  /** M, the number of slots: a prime. */
  tableSize?: number;
  /** Re-point the slots of servers at weight 0 (true) or refuse their keys (false). */
  fallback?: boolean;
}

export const DEFAULT_TABLE_SIZE = 65537;
export const DEFAULT_FALLBACK = true;

const gcd = (a: number, b: number): number => {
  while (b) [a, b] = [b, a % b];
  return a;
};

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * How many bits of weight/gcd a turn keeps, as ip_vs_mh.c's IP_VS_MH_TAB_BITS: half the
 * bits of the table size (IPVS's 4093-slot default keeps 6 bits; 65537 keeps 8).
 */
export const weightBits = (tableSize: number): number => Math.floor(Math.round(Math.log2(tableSize)) / 2);

/**
 * Slots each server claims per round, as ip_vs_mh.c: weight / gcd(weights), shifted right
 * until the largest fits weightBits(M) bits, and at least 1. IPVS stops there, and a server
 * late in the order gets no slot at all when the turns of one round add up to more than M;
 * here the shift grows until one round fits, so every server gets a slot.
 */
export function maglevTurns(weights: readonly number[], tableSize: number): number[] {
  let g = 0;
  let max = 0;
  for (const w of weights) {
    g = gcd(w, g);
    if (w > max) max = w;
  }
  if (g === 0) return weights.map(() => 0);
  const mw = max / g;
  let shift = Math.max(0, 32 - Math.clz32(mw) - weightBits(tableSize));
  for (;;) {
    let total = 0;
    const turns = weights.map((w) => {
      const t = w > 0 ? (w / g) >> shift || 1 : 0;
      total += t;
      return t;
    });
    if (total <= tableSize || mw >> shift === 0) return turns;
    shift++;
  }
}

/**
 * Maglev's population (Eisenbud et al., NSDI 2016, §3.4, Pseudocode 1), with IPVS's turns:
 * servers take turns in order; in its turn a server claims `turns[m]` slots, each the next
 * slot of its permutation (offset + j × skip) mod M not yet taken; until every slot is taken.
 * Returns the owner (position in the arrays) of every slot, -1 when nobody takes part.
 */
export function maglevPopulate(
  tableSize: number,
  offsets: ArrayLike<number>,
  skips: ArrayLike<number>,
  turns: ArrayLike<number>,
): Int32Array {
  const owner = new Int32Array(tableSize).fill(-1);
  const count = offsets.length;
  let anyTurn = false;
  for (let m = 0; m < count; m++) if (turns[m]! > 0) anyTurn = true;
  if (!anyTurn) return owner;
  const next = new Uint32Array(count);
  for (let m = 0; m < count; m++) next[m] = offsets[m]!;
  let filled = 0;
  for (;;) {
    for (let m = 0; m < count; m++) {
      const skip = skips[m]!;
      for (let t = turns[m]!; t > 0; t--) {
        let c = next[m]!;
        while (owner[c] !== -1) {
          c += skip;
          if (c >= tableSize) c -= tableSize;
        }
        owner[c] = m;
        next[m] = c;
        if (++filled === tableSize) return owner;
      }
    }
  }
}

/** A server's place in Maglev: offset = h1(name) mod M, skip = h2(name) mod (M − 1) + 1. */
export function maglevPermutation(key: string, tableSize: number): { offset: number; skip: number } {
  return { offset: nameHash(key, 0) % tableSize, skip: (nameHash(key, 1) % (tableSize - 1)) + 1 };
}

/**
 * The Maglev lookup table for `servers`: entry c is the index of the server for keys that
 * hash to slot c, or -1. Servers take part in name order, not in the order given, so the
 * table depends only on the set of servers and weights: balancers that list the same
 * servers differently still agree on every key. No server at weight > 0: an empty table.
 */
export function maglevTable(servers: readonly MaglevServer[], options: MaglevOptions = {}): number[] {
  const tableSize = options.tableSize ?? DEFAULT_TABLE_SIZE;
  const fallback = options.fallback ?? DEFAULT_FALLBACK;
  if (!isPrime(tableSize)) throw new RangeError(`mh: tableSize ${tableSize} is not a prime`);

  const available = new Uint8Array(servers.length);
  let anyAvailable = false;
  const members: { index: number; key: string; weight: number }[] = [];
  servers.forEach((s, index) => {
    if (s.weight > 0) available[index] = 1;
    if (s.weight > 0) anyAvailable = true;
    const layoutWeight = s.weight > 0 ? s.weight : (s.configuredWeight ?? 0);
    if (layoutWeight > 0) members.push({ index, key: s.key, weight: layoutWeight });
  });
  if (!anyAvailable) return [];
  if (members.length > tableSize) {
    throw new RangeError(
      `mh: ${members.length} servers do not fit a table of ${tableSize} slots; configure a larger prime tableSize`,
    );
  }
  members.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.index - b.index));

  const offsets = new Uint32Array(members.length);
  const skips = new Uint32Array(members.length);
  members.forEach((m, i) => {
    const p = maglevPermutation(m.key, tableSize);
    offsets[i] = p.offset;
    skips[i] = p.skip;
  });
  const turns = maglevTurns(
    members.map((m) => m.weight),
    tableSize,
  );
  const owner = maglevPopulate(tableSize, offsets, skips, turns);
  const serverOf = Int32Array.from(members, (m) => m.index);
  if (members.every((m) => available[m.index])) {
    const table = new Array<number>(tableSize);
    for (let c = 0; c < tableSize; c++) table[c] = serverOf[owner[c]!]!;
    return table;
  }
  const table = new Int32Array(tableSize);
  for (let c = 0; c < tableSize; c++) table[c] = serverOf[owner[c]!]!;
  return resolveUnavailable(table, available, fallback);
}
