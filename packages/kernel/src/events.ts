import { EventEmitter } from 'eventemitter3';
import type { ConfigIssue } from './errors.js';
import type { ServerHealth } from './service.js';

export interface ServerRef {
  service: string;
  server: string;
}

/** Why a connection to a server failed; `local` is this host's fault (EMFILE, EADDRNOTAVAIL…), never the server's. */
export type ConnectionFailureReason =
  'refused' | 'reset' | 'timeout' | 'unreachable' | 'oneway-expired' | 'local' | 'other';

/**
 * Why the dataplane itself ended a connection (absent: the endpoints closed it, or it
 * expired idle): a draining server's connection idle for `drain.idleClose`, or still open
 * at `drain.deadline`; or its server retired with `expire` (a RST in packet dataplanes).
 */
export type ConnectionCloseReason = 'drain-idle' | 'drain-deadline' | 'expire';

/**
 * Every event on the kernel's bus, name → payload. Dataplanes emit `connection:*` and
 * `health:signal`; the kernel emits the rest.
 */
export interface FulcrumEventMap {
  'service:added': { service: string };
  'service:updated': { service: string; changes: string[] };
  'service:removed': { service: string };
  'server:added': ServerRef & { weight: number };
  'server:removed': ServerRef;
  /** One checker's verdict changed. */
  'server:health': ServerRef & { health: ServerHealth; checker: string; reason: string };
  /** The server's overall state changed (every checker considered): what notify up/down follow. */
  'server:state': ServerRef & { health: ServerHealth; reason: string };
  'service:quorum': { service: string; up: boolean; liveWeight: number; required: number };
  'server:weight': ServerRef & { weight: number; previous: number; reason: string };
  'plan:compiled': { service: string; kind: string; servers: number };
  'connection:opened': ServerRef & { client: string };
  'connection:closed': ServerRef & { client: string; durationMs: number; reason?: ConnectionCloseReason };
  'connection:failed': ServerRef & { client: string; reason: ConnectionFailureReason; retried: boolean };
  /**
   * Passive-health signal from a dataplane (DPVS dest-check's inputs): `ok: false` when a
   * connection to the server ends or expires before the server answered — SYN_SENT in the
   * socket dataplane, SYN_RECV in the packet dataplane (IPVS's name for that state in
   * FULLNAT) — or a UDP session expires ONEWAY; `ok: true` when the server answered.
   */
  'health:signal': ServerRef & { ok: boolean; reason: string };
  'config:applied': { version: number; changes: number };
  'config:rejected': { issues: readonly ConfigIssue[] };
  'plugin:error': { plugin: string; hook: string; error: Error };
}

export type FulcrumEventName = keyof FulcrumEventMap;

type Listeners = { [K in FulcrumEventName]: (payload: FulcrumEventMap[K]) => void };

/** The kernel's typed event bus (eventemitter3). */
export class EventBus extends EventEmitter<Listeners> {}
