import { loadRelay, RECORD_FIELDS, RecordKind, type NativeRelay } from './native-relay.js';

/** A connection whose bytes the native relay moves. */
export interface Relayed {
  readonly id: number;
  /** One record from the relay: what happened, and the bytes and reads each way since the last one. */
  onRelayRecord(
    kind: number,
    arg: number,
    inBytes: number,
    outBytes: number,
    inReads: number,
    outReads: number,
  ): void;
}

/**
 * The dataplane's side of the native relay: hands connections over, and turns the relay's
 * records back into the connections' counters and states. Records arrive in batches when
 * the relay wakes the event loop (a FIN, a close, a first byte), and byte counts whenever
 * sync() runs: before each sweep, listing and scrape, so what is shown is exact.
 */
export class RelayHost {
  readonly threads: number;
  readonly splice: boolean;
  /** Connections handed over so far. */
  handedOff = 0;
  readonly #native: NativeRelay;
  readonly #conns = new Map<number, Relayed>();

  constructor(threads: number, splice: boolean) {
    this.threads = threads;
    this.splice = splice;
    const { Relay } = loadRelay();
    this.#native = new Relay(threads, splice, () => this.sync());
  }

  /** Connections the relay holds now. */
  get size(): number {
    return this.#conns.size;
  }

  /** Hands over both descriptors; false when they could not be taken (out of descriptors). */
  add(conn: Relayed, clientFd: number, serverFd: number, answered: boolean): boolean {
    if (this.#native.add(conn.id, clientFd, serverFd, answered) !== 0) return false;
    this.#conns.set(conn.id, conn);
    this.handedOff++;
    return true;
  }

  close(conn: Relayed, mode: number): void {
    this.#native.close(conn.id, mode);
  }

  sync(): void {
    const r = this.#native.poll();
    for (let i = 0; i < r.length; i += RECORD_FIELDS) {
      const id = r[i]!;
      const kind = r[i + 1]!;
      const conn = this.#conns.get(id);
      if (!conn) continue;
      if (kind === RecordKind.CLOSED) this.#conns.delete(id);
      conn.onRelayRecord(kind, r[i + 2]!, r[i + 3]!, r[i + 4]!, r[i + 5]!, r[i + 6]!);
    }
  }

  stop(): void {
    this.sync();
    this.#native.stop();
    this.#conns.clear();
  }
}
