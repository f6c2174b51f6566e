import { Counter, Gauge, Histogram, Registry } from 'prom-client';

const NAME_RE = /^fulcrum_[a-z0-9_]+$/;

interface MetricSpec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
  /**
   * Called at scrape time (prom-client's `collect`), so a dataplane can keep plain counters
   * on its hot path and publish them only when /metrics is read.
   */
  collect?: () => void | Promise<void>;
}

/**
 * The kernel's prom-client registry, and the one way plugins make metrics: names start
 * with `fulcrum_`, and asking twice for the same metric returns the same one (plugins are
 * created once per service and share their metrics).
 */
export class MetricsRegistry {
  readonly registry: Registry;

  constructor(registry: Registry = new Registry()) {
    this.registry = registry;
  }

  counter<L extends string>(spec: MetricSpec<L>): Counter<L> {
    return this.#get(
      spec,
      () => new Counter({ ...spec, labelNames: spec.labelNames ?? [], registers: [this.registry] }),
    );
  }

  gauge<L extends string>(spec: MetricSpec<L>): Gauge<L> {
    return this.#get(
      spec,
      () => new Gauge({ ...spec, labelNames: spec.labelNames ?? [], registers: [this.registry] }),
    );
  }

  histogram<L extends string>(spec: MetricSpec<L> & { buckets?: number[] }): Histogram<L> {
    return this.#get(
      spec,
      () => new Histogram({ ...spec, labelNames: spec.labelNames ?? [], registers: [this.registry] }),
    );
  }

  /** The text exposition format, as served on `/metrics`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  #get<T>(spec: MetricSpec<string>, make: () => T): T {
    if (!NAME_RE.test(spec.name)) {
      throw new TypeError(`metric name "${spec.name}" must match ${NAME_RE} (snake_case, prefixed fulcrum_)`);
    }
    const existing = this.registry.getSingleMetric(spec.name);
    return existing ? (existing as T) : make();
  }
}
