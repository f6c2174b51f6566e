import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { DataplaneError } from '@fulcrum/kernel';

/** The code of the error raised when `relay: native` is asked for and the addon cannot load. */
export const RELAY_UNAVAILABLE = 'FULCRUM_DATAPLANE_UNAVAILABLE';

/** What the addon reports, one record of RECORD_FIELDS numbers each. */
export const RecordKind = {
  STATS: 0,
  CLIENT_EOF: 1,
  SERVER_EOF: 2,
  ANSWERED: 3,
  CLOSED: 4,
  ACCEPT: 5,
  CONNECTED: 6,
  SERVER_FAILED: 7,
  ACCEPT_ERROR: 8,
} as const;
export const RECORD_FIELDS = 8;
/** An ACCEPT record's pick: plan generation × PICK_SCALE + server index (-1: none). */
export const PICK_SCALE = 16777216;
/** What a plan pushed to the relay is (plan()). */
export const NativePlanKind = { NONE: 0, SEQUENCE: 1, HASH: 2 } as const;
/** How the dataplane asks the addon to end a connection. */
export const CloseMode = { FIN: 0, RESET: 1, ABORT: 2 } as const;

/** A CLOSED record's `arg`: how the connection ended. */
export interface ClosedHow {
  /** Ended by a reset (a peer's, propagated, or asked for). */
  reset: boolean;
  /** Ended because the dataplane asked (ABORT). */
  aborted: boolean;
  /** The side whose error ended it: 1 client, 2 server, 0 none. */
  side: 0 | 1 | 2;
  /** errno name of that error (ECONNRESET, EPIPE…), when there was one. */
  code: string | undefined;
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, n]) => [n as number, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

export function closedHow(arg: number): ClosedHow {
  const errno = Math.floor(arg / 16);
  return {
    reset: (arg & 1) !== 0,
    aborted: (arg & 2) !== 0,
    side: ((arg >> 2) & 3) as 0 | 1 | 2,
    code: errno ? errnoName(errno) : undefined,
  };
}

/** What the relay threads are told at start. */
export interface RelaySettings {
  threads: number;
  /** splice(2) through a pipe per direction instead of a buffer. */
  splice: boolean;
  /** An accepted client stays on the thread that accepted it (else: round-robin over threads). */
  acceptLocal: boolean;
  /** TCP_NODELAY on the sockets the relay accepts and opens. */
  noDelay: boolean;
  /** Client bytes kept until the server's first byte, to replay on a retry (0: none). */
  replayLimit: number;
  /** Client bytes read while no server takes them; past this the client is not read. */
  earlyLimit: number;
}

/** The addon's Relay class. */
export interface NativeRelay {
  /** Hands over both descriptors (the addon duplicates them); 0, or the errno of the failed dup. */
  add(id: number, clientFd: number, serverFd: number, answered: boolean): number;
  close(id: number, mode: number): void;
  /**
   * Every record published since the last poll; with `counters`, also the bytes and reads of
   * every connection that moved some since it last reported them (waits for the threads'
   * current batches). Until flush(), the commands sent (connect, close, failServer) are
   * queued, and each thread is woken once for them at flush().
   */
  poll(counters: boolean): Float64Array;
  /** Wakes the threads for the commands sent since poll(). */
  flush(): void;
  /** The strings the last poll's records name (addresses). */
  strings(): string[];
  /** Binds and listens; the threads accept on it. The listener's id, or -errno. */
  listen(address: string, port: number, backlog: number): number;
  /** Stops accepting and closes the listening socket (the port is free on return). */
  unlisten(id: number): void;
  /** Connects an accepted client's connection to a server: 0, or an errno when an address does not parse. */
  connect(
    id: number,
    attempt: number,
    address: string,
    port: number,
    localAddress: string | undefined,
    header: Buffer | undefined,
  ): number;
  /**
   * The plan the relay threads execute for a listener's clients from now on: they pick the
   * server and connect at accept, and report the pick in the ACCEPT record. `kind` NONE:
   * TypeScript schedules every client. `entries` is the sequence or the hash table, `fields`
   * the hash fields (0 source address, 1 source port, 2 destination address, 3 destination
   * port), one address, port and availability (0/1) per server; `restart` starts a sequence
   * from its beginning. 0, or EINVAL when something does not parse.
   */
  plan(
    listener: number,
    gen: number,
    kind: number,
    entries: Int32Array,
    fields: Int32Array,
    addresses: string[],
    ports: Int32Array,
    available: Uint8Array,
    restart: boolean,
  ): number;
  /** Takes the next turn of the listener's sequence cursor, the one its native picks move. */
  turn(listener: number): number;
  /** The balancer's side toward the server of a connection the relay holds: [address, port]. */
  localOf(id: number): [string, number] | undefined;
  /** Fails a connect still in progress (connectTimeout), as if the server had failed with `errno`. */
  failServer(id: number, attempt: number, errno: number): void;
  /** Joins the threads; connections still relayed are reset. */
  stop(): void;
}

interface Binding {
  Relay: new (settings: RelaySettings, onRecords: () => void) => NativeRelay;
}

const addonPath = fileURLToPath(new URL('../build/Release/fulcrum_relay.node', import.meta.url));
let cached: Binding | undefined;
let failure: Error | undefined;

/** Loads the addon once; throws FULCRUM_DATAPLANE_UNAVAILABLE saying what to build. */
export function loadRelay(): Binding {
  if (cached) return cached;
  if (failure) throw failure;
  if (process.platform !== 'linux') {
    failure = new DataplaneError('the native relay needs Linux (epoll, splice): use relay: js', {
      code: RELAY_UNAVAILABLE,
    });
  } else if (!existsSync(addonPath)) {
    failure = new DataplaneError(
      `the native relay is not built (${addonPath} missing): install g++, make and python3, then run "npm run build" at the repository root (or "npm run build:native" in @fulcrum/dataplane-socket)`,
      { code: RELAY_UNAVAILABLE, details: { addonPath } },
    );
  } else {
    try {
      cached = createRequire(import.meta.url)(addonPath) as Binding;
      return cached;
    } catch (e) {
      failure = new DataplaneError(
        `the native relay does not load (${(e as Error).message}): rebuild it for this Node with "npm run build"`,
        { code: RELAY_UNAVAILABLE, details: { addonPath }, cause: e },
      );
    }
  }
  throw failure!;
}

/** Why the native relay cannot be used here, or undefined when it can. */
export function nativeRelayUnavailable(): string | undefined {
  try {
    loadRelay();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}
