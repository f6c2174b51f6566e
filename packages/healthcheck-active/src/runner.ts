import {
  formatDuration,
  type HealthTarget,
  type HealthVerdict,
  type HealthWatch,
  type PluginContext,
  type TimerHandle,
} from '@fulcrum/kernel';
import type { ActiveOptions } from './options.js';

/** Where and how one probe goes: the real server, or the `address`/`port` override. */
export interface ProbeTarget extends HealthTarget {
  connectAddress: string;
  connectPort: number;
  bindTo?: string;
  /** The attempt's budget; the runner also aborts `signal` when it runs out. */
  timeoutMs: number;
}

export interface ProbeResult {
  ok: boolean;
  /** Shown to operators: `connect ECONNREFUSED`, `status 503`, `exit 1`… */
  reason: string;
  /** A short, bounded label for metrics (`refused`, `timeout`, `status`…); default `failed`. */
  code?: string;
  /** A dynamic weight (keepalived misc_dynamic); only meaningful when ok. */
  weight?: number;
}

/**
 * One attempt. Must settle soon after `signal` aborts, release every socket, process and
 * timer it made, and never throw synchronously (a rejection counts as a failure).
 */
export type Probe = (target: ProbeTarget, signal: AbortSignal) => Promise<ProbeResult>;

interface Metrics {
  observe(result: ProbeResult, seconds: number): void;
}

function metricsFor(ctx: PluginContext): Metrics {
  const service = ctx.service?.name ?? '';
  const checker = ctx.plugin.name;
  const duration = ctx.metrics.histogram({
    name: 'fulcrum_healthcheck_duration_seconds',
    help: 'Duration of active health checks, retries included',
    labelNames: ['service', 'checker', 'result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10],
  });
  const failures = ctx.metrics.counter({
    name: 'fulcrum_healthcheck_failures_total',
    help: 'Failed active health checks by reason',
    labelNames: ['service', 'checker', 'reason'] as const,
  });
  return {
    observe(result, seconds) {
      duration.observe({ service, checker, result: result.ok ? 'up' : 'down' }, seconds);
      if (!result.ok) failures.inc({ service, checker, reason: result.code ?? 'failed' });
    },
  };
}

const settleError = (e: unknown): ProbeResult => ({
  ok: false,
  reason: e instanceof Error ? e.message : String(e),
  code: 'error',
});

/**
 * Runs a probe against one server forever: a check is up to 1 + `retries` attempts,
 * `retryDelay` apart, each bounded by `timeout`; `fall` failed checks in a row take an up
 * server down and `rise` passed checks bring a down one up (HAProxy); checks are `interval`
 * apart, the first after a random `warmup`. Every timer goes through ctx.clock.
 */
export class ActiveWatch implements HealthWatch {
  readonly #ctx: PluginContext;
  readonly #options: ActiveOptions;
  readonly #probe: Probe;
  readonly #target: ProbeTarget;
  readonly #report: (v: HealthVerdict) => void;
  readonly #metrics: Metrics;
  readonly #onStop: () => void;
  #up: boolean;
  #passes = 0;
  #fails = 0;
  #weight: number | undefined;
  #timer: TimerHandle | undefined;
  #inflight: AbortController | undefined;
  #stopped = false;

  constructor(
    ctx: PluginContext,
    options: ActiveOptions,
    probe: Probe,
    target: HealthTarget,
    report: (v: HealthVerdict) => void,
    onStop: () => void = () => {},
  ) {
    this.#ctx = ctx;
    this.#options = options;
    this.#probe = probe;
    this.#report = report;
    this.#onStop = onStop;
    this.#metrics = metricsFor(ctx);
    this.#target = {
      ...target,
      connectAddress: options.address ?? target.address,
      connectPort: options.port ?? target.port,
      ...(options.bindTo ? { bindTo: options.bindTo } : {}),
      timeoutMs: options.timeout,
    };
    this.#up = options.initialState === 'up';
  }

  start(): this {
    if (!this.#up) this.#emit({ up: false, reason: 'initial state down (alpha): not checked yet' });
    const spread = this.#options.warmup ?? this.#options.interval;
    this.#timer = this.#ctx.clock.setTimeout(() => void this.#check(), Math.floor(Math.random() * spread));
    return this;
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#inflight?.abort(new Error('watch stopped'));
    this.#onStop();
  }

  async #check(): Promise<void> {
    this.#timer = undefined;
    const started = this.#ctx.clock.now();
    const { retries, retryDelay } = this.#options;
    let result: ProbeResult = { ok: false, reason: 'not run' };
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0 && !(await this.#sleep(retryDelay))) return;
      result = await this.#attempt();
      if (this.#stopped) return;
      if (result.ok) break;
      if (retries > 0)
        result = { ...result, reason: `${result.reason} (attempt ${attempt + 1}/${retries + 1})` };
    }
    this.#metrics.observe(result, (this.#ctx.clock.now() - started) / 1000);
    this.#record(result);
    if (!this.#stopped)
      this.#timer = this.#ctx.clock.setTimeout(() => void this.#check(), this.#options.interval);
  }

  /** One probe, raced against the timeout so a probe that ignores its signal cannot stall us. */
  #attempt(): Promise<ProbeResult> {
    const controller = new AbortController();
    this.#inflight = controller;
    const { timeout } = this.#options;
    return new Promise<ProbeResult>((resolve) => {
      const timer = this.#ctx.clock.setTimeout(() => {
        const reason = `timeout after ${formatDuration(timeout)}`;
        controller.abort(new Error(reason));
        resolve({ ok: false, reason, code: 'timeout' });
      }, timeout);
      let probing: Promise<ProbeResult>;
      try {
        probing = this.#probe(this.#target, controller.signal);
      } catch (e) {
        probing = Promise.resolve(settleError(e));
      }
      probing.then(
        (r) => {
          timer.cancel();
          resolve(r);
        },
        (e: unknown) => {
          timer.cancel();
          resolve(settleError(e));
        },
      );
    }).finally(() => {
      if (this.#inflight === controller) this.#inflight = undefined;
    });
  }

  /** Resolves true after `ms`, or never when the watch stops meanwhile. */
  #sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      this.#timer = this.#ctx.clock.setTimeout(() => {
        this.#timer = undefined;
        resolve(!this.#stopped);
      }, ms);
    });
  }

  #record(result: ProbeResult): void {
    const { rise, fall } = this.#options;
    if (result.ok) {
      this.#fails = 0;
      this.#passes++;
      if (!this.#up && this.#passes >= rise) {
        this.#up = true;
        this.#weight = result.weight;
        const after = rise > 1 ? ` (${rise} checks in a row)` : '';
        this.#emit({ up: true, reason: `${result.reason}${after}`, ...weightOf(result) });
      } else if (this.#up && result.weight !== this.#weight) {
        this.#weight = result.weight;
        this.#emit({ up: true, reason: result.reason, ...weightOf(result) });
      }
    } else {
      this.#passes = 0;
      this.#fails++;
      this.#ctx.logger.debug({ server: this.#target.server, reason: result.reason }, 'check failed');
      if (this.#up && this.#fails >= fall) {
        this.#up = false;
        this.#weight = undefined;
        const after = fall > 1 ? ` (${fall} checks in a row)` : '';
        this.#emit({ up: false, reason: `${result.reason}${after}` });
      }
    }
  }

  #emit(verdict: HealthVerdict): void {
    if (this.#stopped) return;
    this.#ctx.logger.info(
      { server: this.#target.server, up: verdict.up, weight: verdict.weight },
      `${this.#ctx.plugin.name}: ${this.#target.server} ${verdict.up ? 'up' : 'down'}: ${verdict.reason}`,
    );
    this.#report(verdict);
  }
}

const weightOf = (r: ProbeResult) => (r.weight !== undefined ? { weight: r.weight } : {});
