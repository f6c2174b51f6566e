import { MemberSet, type SlotOf } from './collections.js';
import type { Conn } from './conn.js';
import type { Dest } from './dest.js';
import type { VirtualService } from './virtual-service.js';

/** The states a closed TCP connection lingers in (listed, counted as inactive) for `timeWait`. */
export type LingerState = 'TIME_WAIT' | 'CLOSE';

/** A lingering entry, as listings read it. */
export interface LingeringEntry {
  state: LingerState;
  /** When it started lingering (its idle clock's start). */
  since: number;
  clientAddress: string;
  clientPort: number;
  service: VirtualService;
  dest: Dest | undefined;
}

/** A connection's place in the table's live entries. */
const TABLE_SLOT: SlotOf<Conn> = {
  get: (c) => c.tableSlot,
  set: (c, i) => {
    c.tableSlot = i;
  },
};

/**
 * Every connection of one dataplane instance. Timers are not per connection: one sweep
 * every `sweepInterval` compares each entry's idle time with its state's timeout (IPVS arms
 * a timer per connection; a sweep costs less per packet in JavaScript and is exact enough
 * at a resolution of the sweep interval).
 *
 * Closed connections that linger (TIME_WAIT, CLOSE) are not Conn objects: at thousands of
 * new connections a second, `timeWait` (10 s) of them would be tens of thousands of objects
 * surviving into V8's old generation, walked by every sweep. They are kept in a ring of
 * typed arrays instead, in the order they started lingering — all linger for the same
 * `timeWait`, so they expire from its front and no sweep walks them.
 */
export class ConnTable {
  readonly #conns = new MemberSet<Conn>(TABLE_SLOT);
  readonly #timeWait: number;
  // The ring: `#count` entries from `#head`, capacity a power of two.
  #head = 0;
  #count = 0;
  #since = new Float64Array(64);
  #closeState = new Uint8Array(64); // 1: CLOSE (reset), 0: TIME_WAIT
  #port = new Uint16Array(64);
  #address: (string | undefined)[] = new Array<string | undefined>(64);
  #service: (VirtualService | undefined)[] = new Array<VirtualService | undefined>(64);
  #dest: (Dest | undefined)[] = new Array<Dest | undefined>(64);

  constructor(timeWait: number) {
    this.#timeWait = timeWait;
  }

  /** Live connections and lingering entries. */
  get size(): number {
    return this.#conns.size + this.#count;
  }

  /** Lingering (TIME_WAIT, CLOSE) entries. */
  get lingering(): number {
    return this.#count;
  }

  add(conn: Conn): void {
    this.#conns.add(conn);
  }

  delete(conn: Conn): void {
    this.#conns.delete(conn);
  }

  /** The connections that are Conn objects (every entry but the lingering ones). */
  values(): IterableIterator<Conn> {
    return this.#conns.values();
  }

  /**
   * A closed connection leaves as an object and lingers as an entry of the ring: still
   * counted on its server as inactive (and keeping a server that left the service, and its
   * service, around) until it expires.
   */
  linger(conn: Conn, state: LingerState, now: number): void {
    const dest = conn.dest;
    conn.unbindDest();
    this.#conns.delete(conn);
    if (this.#count === this.#since.length) this.#grow();
    const i = (this.#head + this.#count) & (this.#since.length - 1);
    this.#count++;
    this.#since[i] = now;
    this.#closeState[i] = state === 'CLOSE' ? 1 : 0;
    this.#port[i] = conn.clientPort;
    this.#address[i] = conn.clientAddress;
    this.#service[i] = conn.service;
    this.#dest[i] = dest;
    if (dest) {
      dest.inactive++;
      dest.lingering++;
    }
  }

  /** Each lingering entry, oldest first. */
  forEachLingering(fn: (entry: LingeringEntry) => void): void {
    const mask = this.#since.length - 1;
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head + k) & mask;
      fn({
        state: this.#closeState[i] ? 'CLOSE' : 'TIME_WAIT',
        since: this.#since[i]!,
        clientAddress: this.#address[i]!,
        clientPort: this.#port[i]!,
        service: this.#service[i]!,
        dest: this.#dest[i],
      });
    }
  }

  /** Lingering entries whose `timeWait` is over leave (all of them with `all`: stop). */
  expire(now: number, all = false): void {
    const mask = this.#since.length - 1;
    while (this.#count > 0 && (all || now - this.#since[this.#head]! >= this.#timeWait)) {
      const i = this.#head;
      const service = this.#service[i]!;
      const dest = this.#dest[i];
      this.#address[i] = this.#service[i] = this.#dest[i] = undefined;
      this.#head = (i + 1) & mask;
      this.#count--;
      if (dest) {
        dest.inactive--;
        dest.lingering--;
      }
      service.connRemoved(undefined, dest);
    }
    if (this.#count === 0) this.#head = 0;
    // After a burst, give the memory back.
    if (this.#since.length > 1024 && this.#count * 8 < this.#since.length)
      this.#resize(this.#since.length / 2);
  }

  #grow(): void {
    this.#resize(this.#since.length * 2);
  }

  #resize(to: number): void {
    const cap = this.#since.length;
    const since = new Float64Array(to);
    const closeState = new Uint8Array(to);
    const port = new Uint16Array(to);
    const address = new Array<string | undefined>(to);
    const service = new Array<VirtualService | undefined>(to);
    const dest = new Array<Dest | undefined>(to);
    for (let k = 0; k < this.#count; k++) {
      const i = (this.#head + k) & (cap - 1);
      since[k] = this.#since[i]!;
      closeState[k] = this.#closeState[i]!;
      port[k] = this.#port[i]!;
      address[k] = this.#address[i];
      service[k] = this.#service[i];
      dest[k] = this.#dest[i];
    }
    this.#since = since;
    this.#closeState = closeState;
    this.#port = port;
    this.#address = address;
    this.#service = service;
    this.#dest = dest;
    this.#head = 0;
  }

  /** Runs timeouts and drain decisions; entries removed while sweeping are skipped (Set semantics). */
  sweep(now: number): void {
    this.expire(now);
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
