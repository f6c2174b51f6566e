import type { Counter, Gauge, Histogram } from 'prom-client';
import type { MetricsRegistry } from './metrics.js';
import type { RealServerView } from './service.js';

/** The kernel's own metrics (the README's metrics table lists them). */
export class KernelMetrics {
  readonly applies: Counter<'result'>;
  readonly version: Gauge;
  readonly pluginErrors: Counter<'plugin' | 'hook'>;
  readonly compileSeconds: Histogram<'scheduler'>;
  readonly #weight: Gauge<'service' | 'server'>;
  readonly #up: Gauge<'service' | 'server'>;

  constructor(metrics: MetricsRegistry) {
    this.applies = metrics.counter({
      name: 'fulcrum_config_applies_total',
      help: 'Configuration changes, by result (applied, rejected)',
      labelNames: ['result'],
    });
    this.version = metrics.gauge({
      name: 'fulcrum_config_version',
      help: 'Version of the applied configuration (increases with every change)',
    });
    this.pluginErrors = metrics.counter({
      name: 'fulcrum_plugin_errors_total',
      help: 'Errors thrown by plugins at run time, by plugin and hook',
      labelNames: ['plugin', 'hook'],
    });
    this.compileSeconds = metrics.histogram({
      name: 'fulcrum_plan_compile_seconds',
      help: 'Time to compile a scheduling plan',
      labelNames: ['scheduler'],
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1],
    });
    this.#weight = metrics.gauge({
      name: 'fulcrum_server_weight',
      help: 'Effective weight of a real server',
      labelNames: ['service', 'server'],
    });
    this.#up = metrics.gauge({
      name: 'fulcrum_server_up',
      help: '1 when every health check says the real server is up',
      labelNames: ['service', 'server'],
    });
  }

  server(service: string, rs: RealServerView): void {
    this.#weight.set({ service, server: rs.key }, rs.weight);
    this.#up.set({ service, server: rs.key }, rs.health === 'up' ? 1 : 0);
  }

  forget(service: string, server: string): void {
    this.#weight.remove({ service, server });
    this.#up.remove({ service, server });
  }
}
