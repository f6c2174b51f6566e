import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { DataplaneError } from '@fulcrum/kernel';

/** The code of the error raised when `relay: native` is asked for and the addon cannot load. */
export const RELAY_UNAVAILABLE = 'FULCRUM_DATAPLANE_UNAVAILABLE';

/** What the addon reports, one record of RECORD_FIELDS numbers each. */
export const RecordKind = { STATS: 0, CLIENT_EOF: 1, SERVER_EOF: 2, ANSWERED: 3, CLOSED: 4 } as const;
export const RECORD_FIELDS = 7;
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

export function closedHow(arg: number): ClosedHow {
  const errno = Math.floor(arg / 16);
  return {
    reset: (arg & 1) !== 0,
    aborted: (arg & 2) !== 0,
    side: ((arg >> 2) & 3) as 0 | 1 | 2,
    code: errno ? (errnoNames.get(errno) ?? `errno ${errno}`) : undefined,
  };
}

/** The addon's Relay class. */
export interface NativeRelay {
  /** Hands over both descriptors (the addon duplicates them); 0, or the errno of the failed dup. */
  add(id: number, clientFd: number, serverFd: number, answered: boolean): number;
  close(id: number, mode: number): void;
  /** Every record queued since the last poll. */
  poll(): Float64Array;
  /** Joins the threads; connections still relayed are reset. */
  stop(): void;
}

interface Binding {
  Relay: new (threads: number, splice: boolean, onRecords: () => void) => NativeRelay;
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
