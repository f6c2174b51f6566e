import type {
  Clock,
  ConnectionFailureReason,
  EventBus,
  FulcrumEventMap,
  FulcrumEventName,
  Logger,
} from '@fulcrum/kernel';
import { errorCode, isLocalError } from './net-util.js';
import type { ConnTable } from './conn-table.js';
import type { SocketMetrics } from './metrics.js';
import type { SocketDataplaneOptions } from './options.js';
import type { RelayHost } from './relay-host.js';

/** One warning per key per this long: a flood of refusals must not become a flood of log lines. */
const WARN_EVERY_MS = 10_000;

/** What every service and connection of one dataplane instance shares. */
export class Runtime {
  readonly options: SocketDataplaneOptions;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events: EventBus;
  readonly metrics: SocketMetrics;
  readonly table: ConnTable;
  /** Set while stop() runs: nothing is retried or rescheduled any more. */
  stopping = false;
  /** The native relay, when the dataplane uses it (set at start). */
  relay: RelayHost | undefined;
  readonly #warned = new Map<string, { at: number; suppressed: number }>();

  constructor(deps: {
    options: SocketDataplaneOptions;
    clock: Clock;
    logger: Logger;
    events: EventBus;
    metrics: SocketMetrics;
    table: ConnTable;
  }) {
    this.options = deps.options;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.events = deps.events;
    this.metrics = deps.metrics;
    this.table = deps.table;
  }

  /** Emits only when someone listens, so payloads are not built per connection for nobody. */
  /** Whether anyone listens to `name` (so a hot path can skip even building the payload's closure). */
  listens(name: FulcrumEventName): boolean {
    return this.events.listenerCount(name) > 0;
  }

  emit<K extends FulcrumEventName>(name: K, payload: () => FulcrumEventMap[K]): void {
    if (this.events.listenerCount(name) === 0) return;
    try {
      (this.events.emit as (n: K, p: FulcrumEventMap[K]) => boolean)(name, payload());
    } catch (e) {
      this.logger.error({ event: 'listener_error', on: name, err: e }, `a listener of ${name} threw`);
    }
  }

  /** A socket this host could not open (out of descriptors, a local address gone…): counted and logged, never the server's fault. */
  localError(service: string, code: string, fields: Record<string, unknown>, msg: string): void {
    this.metrics.localErrors.inc({ service, code });
    this.warn(`local:${service}:${code}`, { event: 'local_error', service, code, ...fields }, msg);
  }

  /**
   * A failed attempt to reach `server`: this host's fault (EMFILE, EADDRNOTAVAIL…) is counted
   * as a local error and never held against the server; anything else is a server failure
   * and a passive-health signal.
   */
  serverFailed(
    service: string,
    server: string,
    reason: ConnectionFailureReason,
    err: Error | undefined,
  ): void {
    if (err !== undefined && isLocalError(err)) {
      const code = errorCode(err);
      this.localError(
        service,
        code,
        { server },
        `service ${service}: cannot open a socket toward ${server}: ${code}`,
      );
      return;
    }
    this.metrics.failures.inc({ service, server, reason });
    this.emit('health:signal', () => ({
      service,
      server,
      ok: false,
      reason: err ? `${reason} (${errorCode(err)})` : reason,
    }));
  }

  /** A warning logged at most once per key every few seconds, with the count of those held back. */
  warn(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = this.clock.now();
    const last = this.#warned.get(key);
    if (last && now - last.at < WARN_EVERY_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.#warned.set(key, { at: now, suppressed: 0 });
    this.logger.warn({ ...fields, ...(suppressed ? { suppressed } : {}) }, msg);
  }
}
