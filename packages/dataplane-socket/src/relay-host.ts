import {
  errnoName,
  loadRelay,
  RECORD_FIELDS,
  RecordKind,
  type NativeRelay,
  type RelaySettings,
} from './native-relay.js';

/** A connection whose bytes the native relay moves. */
export interface Relayed {
  /** The relay's id of the connection. */
  readonly relayId: number;
  /** One record from the relay: what happened, and the bytes and reads each way since the last one. */
  onRelayRecord(
    kind: number,
    arg: number,
    inBytes: number,
    outBytes: number,
    inReads: number,
    outReads: number,
  ): void;
  /** Native accept: the connect of `attempt` succeeded; `local` is the balancer's side toward the server. */
  onConnected?(attempt: number, localAddress: string, localPort: number): void;
  /** Native accept: the server of `attempt` failed before its first byte. */
  onServerFailed?(attempt: number, code: string, replayable: boolean): void;
}

/** A listening socket the relay threads accept on. */
export interface NativeAcceptor {
  onAccept(
    relayId: number,
    clientAddress: string,
    clientPort: number,
    localAddress: string | undefined,
  ): void;
  onAcceptError(code: string): void;
}

/**
 * The dataplane's side of the native relay: hands connections over (or has them accepted
 * natively), and turns the relay's records back into the connections' counters and states.
 * Records arrive in batches when the relay wakes the event loop (an accept, a connect, a
 * FIN, a close, a first byte), and byte counts whenever sync() runs: before each sweep,
 * listing and scrape, so what is shown is exact.
 */
export class RelayHost {
  readonly settings: RelaySettings;
  /** Whether the relay threads accept and connect (relayAccept), not only relay. */
  readonly accepts: boolean;
  /** Connections handed over or accepted so far. */
  handedOff = 0;
  readonly native: NativeRelay;
  readonly #conns = new Map<number, Relayed>();
  readonly #acceptors = new Map<number, NativeAcceptor>();

  constructor(settings: RelaySettings, accepts: boolean) {
    this.settings = settings;
    this.accepts = accepts;
    const { Relay } = loadRelay();
    this.native = new Relay(settings, () => this.sync());
  }

  /** Connections the relay holds now. */
  get size(): number {
    return this.#conns.size;
  }

  /** Hands over both descriptors; false when they could not be taken (out of descriptors). */
  add(conn: Relayed, clientFd: number, serverFd: number, answered: boolean): boolean {
    if (this.native.add(conn.relayId, clientFd, serverFd, answered) !== 0) return false;
    this.track(conn);
    return true;
  }

  /** A connection the relay accepted: its records go to `conn` from now on. */
  track(conn: Relayed): void {
    this.#conns.set(conn.relayId, conn);
    this.handedOff++;
  }

  close(relayId: number, mode: number): void {
    this.native.close(relayId, mode);
  }

  /** Binds a listener the relay threads accept on: its id, or the errno name of the failure. */
  listen(address: string, port: number, backlog: number, acceptor: NativeAcceptor): number | string {
    const id = this.native.listen(address, port, backlog);
    if (id < 0) return errnoName(-id);
    this.#acceptors.set(id, acceptor);
    return id;
  }

  unlisten(listener: number): void {
    this.#acceptors.delete(listener);
    this.native.unlisten(listener);
  }

  sync(): void {
    const r = this.native.poll();
    try {
      this.#handle(r);
    } finally {
      // The connects and closes sent while handling the batch reach each thread in one wake-up.
      this.native.flush();
    }
  }

  #handle(r: Float64Array): void {
    let strings: string[] | undefined;
    const str = (i: number) => (i < 0 ? undefined : (strings ??= this.native.strings())[i]);
    // Accepts first, in the order the threads accepted them (maxConnections and rr turns
    // follow it); a connection's other records come after its accept in any case.
    const accepts: number[] = [];
    for (let i = 0; i < r.length; i += RECORD_FIELDS) if (r[i + 1] === RecordKind.ACCEPT) accepts.push(i);
    if (accepts.length > 1) accepts.sort((a, b) => r[a + 6]! - r[b + 6]!);
    for (const i of accepts) {
      const acceptor = this.#acceptors.get(r[i + 2]!);
      if (acceptor) acceptor.onAccept(r[i]!, str(r[i + 4]!)!, r[i + 3]!, str(r[i + 5]!));
      else this.native.close(r[i]!, 2);
    }
    for (let i = 0; i < r.length; i += RECORD_FIELDS) {
      const id = r[i]!;
      const kind = r[i + 1]!;
      switch (kind) {
        case RecordKind.ACCEPT:
          continue;
        case RecordKind.ACCEPT_ERROR:
          this.#acceptors.get(r[i + 2]!)?.onAcceptError(errnoName(r[i + 3]!));
          continue;
      }
      const conn = this.#conns.get(id);
      if (!conn) continue;
      if (kind === RecordKind.CONNECTED) conn.onConnected?.(r[i + 2]!, str(r[i + 4]!) ?? '', r[i + 3]!);
      else if (kind === RecordKind.SERVER_FAILED)
        conn.onServerFailed?.(r[i + 2]!, errnoName(r[i + 3]!), r[i + 4] === 1);
      else {
        if (kind === RecordKind.CLOSED) this.#conns.delete(id);
        conn.onRelayRecord(kind, r[i + 2]!, r[i + 3]!, r[i + 4]!, r[i + 5]!, r[i + 6]!);
      }
    }
  }

  stop(): void {
    this.sync();
    this.native.stop();
    this.#conns.clear();
    this.#acceptors.clear();
  }
}
