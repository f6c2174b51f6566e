import type { Conn } from './conn.js';

/**
 * Every connection of one dataplane instance. Timers are not per connection: one sweep
 * every `sweepInterval` compares each entry's idle time with its state's timeout (IPVS arms
 * a timer per connection; a sweep costs less per packet in JavaScript and is exact enough
 * at a resolution of the sweep interval).
 */
export class ConnTable {
  readonly #conns = new Set<Conn>();

  get size(): number {
    return this.#conns.size;
  }

  add(conn: Conn): void {
    this.#conns.add(conn);
  }

  delete(conn: Conn): void {
    this.#conns.delete(conn);
  }

  values(): IterableIterator<Conn> {
    return this.#conns.values();
  }

  /** Runs timeouts and drain decisions; entries removed while sweeping are skipped (Set semantics). */
  sweep(now: number): void {
    for (const conn of this.#conns) {
      if (now - conn.lastActive >= conn.timeoutMs()) {
        conn.onTimeout(now);
        continue;
      }
      const drain = conn.dest?.drain;
      if (drain && conn.live && (now >= drain.deadlineAt || now - conn.lastActive >= drain.idleCloseMs)) {
        conn.close('drain');
        continue;
      }
      conn.tick(now);
    }
  }
}
