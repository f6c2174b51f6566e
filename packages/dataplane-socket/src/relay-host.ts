import { IdMap } from './collections.js';
import type { Dest } from './dest.js';
import {
  errnoName,
  loadRelay,
  NativePlanKind,
  PICK_SCALE,
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
  /** Native accept: the connect of `attempt` succeeded. */
  onConnected?(attempt: number): void;
  /** Native accept: the server of `attempt` failed before its first byte. */
  onServerFailed?(attempt: number, code: string, replayable: boolean): void;
}

/** A listening socket the relay threads accept on. */
export interface NativeAcceptor {
  /**
   * A client accepted. `plan` says that the relay executed that plan itself and is already
   * connecting to its server `index` (a plan with no owner and no servers when the plan it
   * came from is not known any more); undefined: TypeScript schedules the client.
   */
  onAccept(
    relayId: number,
    clientAddress: string,
    clientPort: number,
    localAddress: string | undefined,
    plan: PushedPlan | undefined,
    index: number,
  ): void;
  onAcceptError(code: string): void;
}

/** A plan pushed with pushPlan(), as the relay's picks from it name it (the same object for each pick). */
export interface PushedPlan {
  readonly owner: unknown;
  readonly dests: readonly Dest[];
}

/** What a pick names when its plan is not known any more. */
const UNKNOWN_PLAN: PushedPlan = { owner: undefined, dests: [] };

/** A service's plan, for the relay threads to execute at accept (pushPlan()). */
export interface PlanForRelay {
  kind: (typeof NativePlanKind)[keyof typeof NativePlanKind];
  /** The sequence, or the hash table. */
  entries: readonly number[];
  /** Hash fields, as the addon numbers them. */
  fields: readonly number[];
  /** The servers the entries index, with whether each may take new connections. */
  dests: readonly Dest[];
  /** A sequence starts again from its beginning. */
  restart: boolean;
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
  /** Accepted connections whose server the relay threads picked from a pushed plan. */
  picked = 0;
  readonly native: NativeRelay;
  readonly #conns = new IdMap<Relayed>();
  readonly #acceptors = new Map<number, NativeAcceptor>();
  /** Plans pushed to the relay, by generation, until no record can name them any more. */
  readonly #plans = new Map<number, PushedPlan>();
  /** The generation each listener executes now. */
  readonly #current = new Map<number, number>();
  #gen = 0;
  #lastClient = '';

  constructor(settings: RelaySettings, accepts: boolean) {
    this.settings = settings;
    this.accepts = accepts;
    const { Relay } = loadRelay();
    this.native = new Relay(settings, () => this.sync(false));
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
    this.#current.delete(listener);
    this.native.unlisten(listener);
  }

  /**
   * Has the relay threads execute `plan` for the listener's clients (or none: TypeScript
   * schedules each client). `owner` comes back with each pick, so that a pick made with a
   * plan of the listener's previous owner is recognised.
   */
  pushPlan(listener: number, owner: unknown, plan: PlanForRelay | undefined): void {
    const gen = ++this.#gen;
    let err: number;
    if (!plan) {
      const none = new Int32Array(0);
      err = this.native.plan(
        listener,
        gen,
        NativePlanKind.NONE,
        none,
        none,
        [],
        none,
        new Uint8Array(0),
        false,
      );
    } else {
      const { dests } = plan;
      err = this.native.plan(
        listener,
        gen,
        plan.kind,
        Int32Array.from(plan.entries),
        Int32Array.from(plan.fields),
        dests.map((d) => d.address),
        Int32Array.from(dests, (d) => d.port),
        Uint8Array.from(dests, (d) => (d.available ? 1 : 0)),
        plan.restart,
      );
      if (err === 0) this.#plans.set(gen, { owner, dests });
    }
    // A plan the addon refused leaves the previous one running: run none rather than that.
    if (err !== 0 && plan) this.pushPlan(listener, owner, undefined);
    else this.#current.set(listener, gen);
  }

  /**
   * Handles the records the relay published; with `counters` (listings, scrapes, the sweep)
   * also every connection's bytes and reads so far, which waits for the threads' current
   * batches. The relay's own wake-ups take the records alone, never waiting for a thread.
   */
  sync(counters = true): void {
    // Plans replaced before a poll that waits for the threads' batches (counters) cannot be
    // named by records after it: forget them once it is handled.
    const stale = counters ? this.#stalePlans() : undefined;
    const r = this.native.poll(counters);
    try {
      this.#handle(r);
    } finally {
      // The connects and closes sent while handling the batch reach each thread in one wake-up.
      this.native.flush();
    }
    if (stale) for (const gen of stale) this.#plans.delete(gen);
  }

  #stalePlans(): number[] {
    if (this.#plans.size <= this.#current.size) return [];
    const live = new Set(this.#current.values());
    return [...this.#plans.keys()].filter((gen) => !live.has(gen));
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
      if (!acceptor) {
        this.native.close(r[i]!, 2);
        continue;
      }
      const picked = r[i + 7]!;
      let plan: PushedPlan | undefined;
      let index = -1;
      if (picked >= 0) {
        const gen = Math.floor(picked / PICK_SCALE);
        plan = this.#plans.get(gen) ?? UNKNOWN_PLAN;
        index = picked - gen * PICK_SCALE;
        this.picked++;
      }
      // An address equal to the last one is that same string: what lingering entries keep
      // of clients from one address is one string, not one per poll.
      let client = str(r[i + 4]!)!;
      if (client === this.#lastClient) client = this.#lastClient;
      else this.#lastClient = client;
      acceptor.onAccept(r[i]!, client, r[i + 3]!, str(r[i + 5]!), plan, index);
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
      if (kind === RecordKind.CONNECTED) conn.onConnected?.(r[i + 2]!);
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
    this.#plans.clear();
    this.#current.clear();
  }
}
