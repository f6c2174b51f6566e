/** A timer handle; `unref` lets a daemon exit while timers are pending. */
export interface TimerHandle {
  cancel(): void;
}

/**
 * Time as plugins and state machines see it. The kernel injects the system clock; tests
 * inject a ManualClock and move time by hand, so timelines of seconds or hours run in
 * microseconds and never flake.
 */
export interface Clock {
  /** Milliseconds since an arbitrary epoch (monotonic for the system clock). */
  now(): number;
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  setInterval(fn: () => void, periodMs: number): TimerHandle;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, delayMs) {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, periodMs) {
    const t = setInterval(fn, periodMs);
    return { cancel: () => clearInterval(t) };
  },
};

interface ManualTimer {
  id: number;
  at: number;
  periodMs?: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. Timers fire in time order, ties in the order they
 * were set, and a timer set while advancing fires in the same advance if it falls due.
 */
export class ManualClock implements Clock {
  #now: number;
  #nextId = 1;
  #timers = new Map<number, ManualTimer>();

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, delayMs: number): TimerHandle {
    return this.#add(fn, Math.max(0, delayMs));
  }

  setInterval(fn: () => void, periodMs: number): TimerHandle {
    if (!(periodMs > 0)) throw new RangeError(`interval period must be > 0, got ${periodMs}`);
    return this.#add(fn, periodMs, periodMs);
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Time of the next timer due, or undefined when none is pending. */
  nextDue(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers.values()) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /** Moves time forward by `ms`, firing every timer that falls due, in order. */
  advance(ms: number): void {
    if (ms < 0) throw new RangeError('a clock cannot go backwards');
    const target = this.#now + ms;
    for (;;) {
      const next = this.#due(target);
      if (!next) break;
      this.#now = next.at;
      if (next.periodMs !== undefined) next.at += next.periodMs;
      else this.#timers.delete(next.id);
      next.fn();
    }
    this.#now = target;
  }

  /** Fires timers until none is left or `limit` timers have fired (guards against intervals). */
  runAll(limit = 10_000): void {
    for (let i = 0; i < limit; i++) {
      const at = this.nextDue();
      if (at === undefined) return;
      this.advance(at - this.#now);
    }
    throw new Error(`ManualClock.runAll: still ${this.#timers.size} timers after ${limit} firings`);
  }

  #add(fn: () => void, delayMs: number, periodMs?: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, {
      id,
      at: this.#now + delayMs,
      fn,
      ...(periodMs !== undefined ? { periodMs } : {}),
    });
    return { cancel: () => void this.#timers.delete(id) };
  }

  #due(target: number): ManualTimer | undefined {
    let best: ManualTimer | undefined;
    for (const t of this.#timers.values()) {
      if (t.at <= target && (!best || t.at < best.at || (t.at === best.at && t.id < best.id))) best = t;
    }
    return best;
  }
}
