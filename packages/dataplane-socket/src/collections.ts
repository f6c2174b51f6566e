// The collections that every connection joins and leaves: the table's live entries, each
// server's connections, the relay host's connections by id.
//
// Why not Set and Map: V8 gives a Set or Map a new backing table as members come and go, and
// the table it replaced stays pointing at its members and at its successor. Once one such
// table has reached the old generation (a Set that lived through start-up does), each
// replaced table is old garbage that the scavenger still treats as a root until the next
// full GC: under connection churn every connection's objects survive the scavenges, are
// promoted, and die in the old generation. Measured at ~16k new connections/s: 3–6 MB
// surviving each scavenge, a scavenge of 8–16 ms every ~0.5 s and a full GC every second
// (decision 0006). These two allocate nothing per member, and clear what they let go of.

/** How a MemberSet reads and writes a member's position in it (-1: not in it). */
export interface SlotOf<T> {
  get(member: T): number;
  set(member: T, index: number): void;
}

/**
 * A set of objects that each carry their position in it (a numeric field of the member's,
 * through `slot`): add and delete in constant time with a swap-remove, no allocation per
 * member. Iterating it walks a copy, and skips what left meanwhile, so members may come
 * and go while it is walked.
 */
export class MemberSet<T> implements Iterable<T> {
  readonly #items: T[] = [];
  readonly #slot: SlotOf<T>;

  constructor(slot: SlotOf<T>) {
    this.#slot = slot;
  }

  get size(): number {
    return this.#items.length;
  }

  has(member: T): boolean {
    const i = this.#slot.get(member);
    return i >= 0 && this.#items[i] === member;
  }

  add(member: T): void {
    if (this.has(member)) return;
    this.#slot.set(member, this.#items.length);
    this.#items.push(member);
  }

  delete(member: T): boolean {
    if (!this.has(member)) return false;
    const i = this.#slot.get(member);
    const last = this.#items.pop()!;
    if (last !== member) {
      this.#items[i] = last;
      this.#slot.set(last, i);
    }
    this.#slot.set(member, -1);
    return true;
  }

  *[Symbol.iterator](): IterableIterator<T> {
    for (const member of this.#items.slice()) if (this.has(member)) yield member;
  }

  values(): IterableIterator<T> {
    return this[Symbol.iterator]();
  }
}

const EMPTY = 0;
const USED = 1;

/**
 * A map from numeric ids (integers up to 2^53) to objects: open addressing with linear
 * probing and backward-shift deletion over typed arrays, no allocation per entry, the
 * value slot cleared when an entry leaves.
 */
export class IdMap<V> {
  #keys = new Float64Array(64);
  #state = new Uint8Array(64);
  #values: (V | undefined)[] = new Array<V | undefined>(64).fill(undefined);
  #bits = 6;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  #home(id: number): number {
    // Ids are mostly consecutive: Fibonacci hashing of the low 32 bits spreads them.
    return Math.imul(id >>> 0, 0x9e3779b1) >>> (32 - this.#bits);
  }

  #find(id: number): number {
    const mask = this.#keys.length - 1;
    for (let i = this.#home(id); this.#state[i] === USED; i = (i + 1) & mask)
      if (this.#keys[i] === id) return i;
    return -1;
  }

  get(id: number): V | undefined {
    const i = this.#find(id);
    return i < 0 ? undefined : this.#values[i];
  }

  has(id: number): boolean {
    return this.#find(id) >= 0;
  }

  set(id: number, value: V): void {
    const found = this.#find(id);
    if (found >= 0) {
      this.#values[found] = value;
      return;
    }
    if ((this.#size + 1) * 2 > this.#keys.length) this.#resize(this.#keys.length * 2);
    this.#insert(id, value);
    this.#size++;
  }

  #insert(id: number, value: V): void {
    const mask = this.#keys.length - 1;
    let i = this.#home(id);
    while (this.#state[i] === USED) i = (i + 1) & mask;
    this.#state[i] = USED;
    this.#keys[i] = id;
    this.#values[i] = value;
  }

  delete(id: number): boolean {
    let i = this.#find(id);
    if (i < 0) return false;
    const mask = this.#keys.length - 1;
    // Backward shift: entries after the hole that may sit in it move up, so that no probe
    // sequence is broken and no tombstone is left.
    for (let j = (i + 1) & mask; this.#state[j] === USED; j = (j + 1) & mask) {
      const home = this.#home(this.#keys[j]!);
      // j's entry may move to i when its home is not within (i, j] (cyclically).
      const between = i <= j ? home > i && home <= j : home > i || home <= j;
      if (between) continue;
      this.#keys[i] = this.#keys[j]!;
      this.#values[i] = this.#values[j];
      i = j;
    }
    this.#state[i] = EMPTY;
    this.#values[i] = undefined;
    this.#size--;
    if (this.#keys.length > 64 && this.#size * 8 < this.#keys.length) this.#resize(this.#keys.length / 2);
    return true;
  }

  clear(): void {
    this.#state.fill(EMPTY);
    this.#values.fill(undefined);
    this.#size = 0;
  }

  #resize(to: number): void {
    const keys = this.#keys;
    const state = this.#state;
    const values = this.#values;
    this.#keys = new Float64Array(to);
    this.#state = new Uint8Array(to);
    this.#values = new Array<V | undefined>(to).fill(undefined);
    this.#bits = Math.log2(to);
    for (let i = 0; i < keys.length; i++) if (state[i] === USED) this.#insert(keys[i]!, values[i] as V);
    // The array let go of must not keep the values alive (see the top of this file).
    values.fill(undefined);
  }
}
