import type { MetricsRegistry } from '@fulcrum/kernel';
import type { Dest, DestStats } from './dest.js';

type Counter = ReturnType<MetricsRegistry['counter']>;
type Gauge = ReturnType<MetricsRegistry['gauge']>;

/** The services whose counts and totals a scrape reads (running and retiring ones). */
export interface StatsSource {
  forEachDest(fn: (service: string, dest: Dest) => void): void;
}

// prom-client calls a metric's `collect` with `this` = the metric before reading it. Several
// dataplane instances may share one registry (and so one metric object): each adds its
// syncer here and the hook runs them all.
const syncers = new WeakMap<object, Set<() => void>>();
function collectHook(this: object): void {
  for (const sync of syncers.get(this) ?? []) sync();
}

const TOTALS: readonly (readonly [keyof DestStats, string, string])[] = [
  ['conns', 'fulcrum_connections_total', 'Connections established to a real server (ipvsadm --stats Conns)'],
  [
    'inPkts',
    'fulcrum_packets_in_total',
    'Reads from clients relayed toward a real server (socket reads, not wire packets)',
  ],
  [
    'outPkts',
    'fulcrum_packets_out_total',
    'Reads from a real server relayed toward clients (socket reads, not wire packets)',
  ],
  ['inBytes', 'fulcrum_bytes_in_total', 'Bytes from clients relayed to a real server'],
  ['outBytes', 'fulcrum_bytes_out_total', 'Bytes from a real server relayed to clients'],
];

/**
 * The socket dataplane's metrics. Hot-path numbers (bytes, reads, connection counts) are
 * plain fields on each server and reach prom-client only when scraped, so relaying a
 * chunk never hashes labels; rare events (failures, refusals) are counted as they happen.
 */
export class SocketMetrics {
  readonly failures: Counter;
  readonly retries: Counter;
  readonly refused: Counter;
  readonly acceptErrors: Counter;
  readonly localErrors: Counter;
  readonly #active: Gauge;
  readonly #inactive: Gauge;
  readonly #persistent: Gauge;
  readonly #totals: (readonly [keyof DestStats, Counter])[];
  readonly #lazy: object[];
  readonly #sync = () => this.sync();
  #source: StatsSource | undefined;

  constructor(registry: MetricsRegistry) {
    const ss = ['service', 'server'];
    const lazy = <T>(
      make: (spec: { name: string; help: string; labelNames: string[] }) => T,
      name: string,
      help: string,
    ): T => make({ name, help, labelNames: ss });
    this.#active = lazy(
      (s) => registry.gauge(s),
      'fulcrum_connections_active',
      'Established connections per real server (ipvsadm ActiveConn)',
    );
    this.#inactive = lazy(
      (s) => registry.gauge(s),
      'fulcrum_connections_inactive',
      'Connections in every other state per real server (ipvsadm InActConn)',
    );
    this.#persistent = lazy(
      (s) => registry.gauge(s),
      'fulcrum_persistence_templates',
      'Persistence templates pointing at a real server (ipvsadm PersistConn)',
    );
    this.#totals = TOTALS.map(
      ([field, name, help]) => [field, lazy((s) => registry.counter(s), name, help)] as const,
    );
    this.#lazy = [this.#active, this.#inactive, this.#persistent, ...this.#totals.map(([, c]) => c)];
    // prom-client reads `collect` off the metric at scrape time; set here rather than in the
    // spec, because the kernel's registry returns an existing metric as it is.
    for (const m of this.#lazy) (m as { collect?: unknown }).collect = collectHook;

    this.failures = registry.counter({
      name: 'fulcrum_connection_failures_total',
      help: 'Failed attempts to reach a real server, by reason (refused, reset, timeout, unreachable, oneway-expired, other)',
      labelNames: ['service', 'server', 'reason'],
    });
    this.retries = registry.counter({
      name: 'fulcrum_connection_retries_total',
      help: 'Connections moved to another real server after this one failed before answering',
      labelNames: ss,
    });
    this.refused = registry.counter({
      name: 'fulcrum_connections_refused_total',
      help: 'Client connections refused, by reason (max-connections, no-server, retries-exhausted)',
      labelNames: ['service', 'reason'],
    });
    this.acceptErrors = registry.counter({
      name: 'fulcrum_accept_errors_total',
      help: 'Errors accepting client connections, by errno code (EMFILE: out of file descriptors)',
      labelNames: ['service', 'code'],
    });
    this.localErrors = registry.counter({
      name: 'fulcrum_local_errors_total',
      help: 'Sockets toward real servers this host could not open, by errno code (EMFILE, ENFILE, EADDRNOTAVAIL…): never counted against a server',
      labelNames: ['service', 'code'],
    });
  }

  attach(source: StatsSource): void {
    this.#source = source;
    for (const m of this.#lazy) {
      let set = syncers.get(m);
      if (!set) syncers.set(m, (set = new Set()));
      set.add(this.#sync);
    }
  }

  detach(): void {
    this.sync();
    for (const m of this.#lazy) syncers.get(m)?.delete(this.#sync);
    this.#source = undefined;
  }

  /** Copies counts and totals into prom-client; idempotent, so every metric's hook may call it. */
  sync(): void {
    const source = this.#source;
    if (!source) return;
    const counts = new Map<
      string,
      { service: string; server: string; active: number; inactive: number; persistent: number }
    >();
    source.forEachDest((service, dest) => {
      this.flushTotals(service, dest);
      const k = `${service}\0${dest.key}`;
      const c = counts.get(k) ?? { service, server: dest.key, active: 0, inactive: 0, persistent: 0 };
      c.active += dest.active;
      c.inactive += dest.inactive;
      c.persistent += dest.persistent;
      counts.set(k, c);
    });
    for (const g of [this.#active, this.#inactive, this.#persistent]) g.reset();
    for (const c of counts.values()) {
      const labels = { service: c.service, server: c.server };
      this.#active.set(labels, c.active);
      this.#inactive.set(labels, c.inactive);
      this.#persistent.set(labels, c.persistent);
    }
  }

  /** Adds what a server's totals gained since the last flush (also called when a server is dropped). */
  flushTotals(service: string, dest: Dest): void {
    for (const [field, counter] of this.#totals) {
      const delta = dest.stats[field] - dest.flushed[field];
      if (delta > 0) {
        counter.inc({ service, server: dest.key }, delta);
        dest.flushed[field] = dest.stats[field];
      }
    }
  }
}
