import type { Clock } from './clock.js';
import type { EventBus } from './events.js';
import type { Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';
import type { SchedulePlan } from './plan.js';
import type { DataplaneChange, Protocol, ServiceView } from './service.js';
import type { Endpoint } from './endpoint.js';
import type { ConnectionEntry, ConnectionQuery, ServiceStatus } from './status.js';

export const PLUGIN_KINDS = ['scheduler', 'healthcheck', 'passthrough', 'dataplane'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

/** A JSON Schema (draft-07, as ajv reads it). `duration: true` marks a duration field. */
export type JsonSchema = Record<string, unknown>;

/**
 * What a dataplane can do; a service that needs more is refused by the kernel before
 * anything starts. Third-party dataplanes may declare further strings.
 */
export type Capability =
  | 'tcp'
  | 'udp'
  | 'fullnat'
  | 'local-addresses'
  | 'persistence'
  | 'proxy-protocol'
  | 'toa'
  | 'synproxy'
  | (string & {});

/** The service a service-scoped plugin instance belongs to. */
export interface ServiceInfo {
  name: string;
  protocol: Protocol;
  listen: Endpoint;
}

/** What a plugin may use. Plugins never see the DI container. */
export interface PluginContext {
  readonly kernelVersion: string;
  readonly plugin: { readonly kind: PluginKind; readonly name: string };
  /** Where in the config this plugin was named, e.g. `services[0].scheduler`. */
  readonly configPath: string;
  /** The service this instance serves; absent for dataplanes. */
  readonly service?: ServiceInfo;
  readonly logger: Logger;
  readonly metrics: MetricsRegistry;
  readonly events: EventBus;
  readonly clock: Clock;
}

interface PluginBase<K extends PluginKind, O, I> {
  readonly kind: K;
  /** Unique per kind, kebab-case; the config refers to the plugin by this name. */
  readonly name: string;
  /** semver range of @fulcrum/kernel this plugin works with. */
  readonly kernel: string;
  readonly description?: string;
  /** JSON Schema of the options, with `default`s; validated by the kernel before create. */
  readonly optionsSchema: JsonSchema;
  create(ctx: PluginContext, options: O): I;
}

// ---- schedulers -------------------------------------------------------------------------

export interface SchedulerInstance {
  /** Compiles the current view of the service into a plan; must not keep the view. */
  compile(view: ServiceView): SchedulePlan;
}
export type SchedulerPlugin<O = Record<string, unknown>> = PluginBase<'scheduler', O, SchedulerInstance>;

// ---- health checks ------------------------------------------------------------------------

/** The server a checker watches, and where to reach it. */
export interface HealthTarget {
  service: ServiceInfo;
  /** `address:port` key of the real server. */
  server: string;
  address: string;
  port: number;
  weight: number;
}

/** One checker's opinion about one server. */
export interface HealthVerdict {
  up: boolean;
  /** Why (shown in logs, events and the admin API): `connect ECONNREFUSED`, `status 503`… */
  reason: string;
  /** A dynamic weight (keepalived misc_dynamic); absent keeps the configured weight. */
  weight?: number;
  /** Checker-specific state for operators (JSON), e.g. the passive check's `{ state, inhibitUntil }`. */
  detail?: Record<string, unknown>;
}

export interface HealthWatch {
  stop(): void;
}

export interface HealthCheckInstance {
  /** Starts watching a server; `report` may be called any time until the watch stops. */
  watch(target: HealthTarget, report: (verdict: HealthVerdict) => void): HealthWatch;
  close?(): void;
}
export type HealthCheckPlugin<O = Record<string, unknown>> = PluginBase<
  'healthcheck',
  O,
  HealthCheckInstance
>;

// ---- passthrough --------------------------------------------------------------------------

export interface PassthroughInstance {
  /** JSON-serialisable settings the dataplane executes (e.g. `{ version: 2 }`). */
  settings: Record<string, unknown>;
}
export interface PassthroughPlugin<O = Record<string, unknown>> extends PluginBase<
  'passthrough',
  O,
  PassthroughInstance
> {
  /** Capabilities the dataplane needs to carry this passthrough (e.g. `['toa']`). */
  readonly requires: readonly Capability[];
}

// ---- dataplanes ---------------------------------------------------------------------------

export interface DataplaneInstance {
  start(): Promise<void>;
  /** Live per-service and per-server counters (optional; for operators). */
  services?(): ServiceStatus[];
  /**
   * The connection table (optional; for `fulcrum adm -Lnc`); must not stall forwarding.
   * May answer asynchronously: a native table of a million connections is copied out by
   * its workers a chunk at a time, and the event loop must not wait for it.
   */
  connections?(query?: ConnectionQuery): ConnectionEntry[] | Promise<ConnectionEntry[]>;
  /**
   * Applies one change atomically: on error the dataplane must be left serving exactly
   * what it served before, and reject with a DataplaneError.
   */
  apply(change: DataplaneChange): Promise<void>;
  stop(): Promise<void>;
  /**
   * How long `stop()` may take on purpose, in milliseconds (a soft stop that lets open
   * connections finish). A supervisor such as the `fulcrum` daemon waits this long on top
   * of its own shutdown deadline before it forces an exit. Optional; 0 when absent.
   */
  readonly stopGraceMs?: number;
}
export interface DataplanePlugin<O = Record<string, unknown>> extends PluginBase<
  'dataplane',
  O,
  DataplaneInstance
> {
  readonly capabilities: readonly Capability[];
}

export type AnyPlugin =
  SchedulerPlugin<never> | HealthCheckPlugin<never> | PassthroughPlugin<never> | DataplanePlugin<never>;

type Definition<P> = Omit<P, 'kind'>;

/** Declares a scheduler plugin; an identity helper that exists for types. */
export function defineScheduler<O = Record<string, unknown>>(
  def: Definition<SchedulerPlugin<O>>,
): SchedulerPlugin<O> {
  return { ...def, kind: 'scheduler' };
}
export function defineHealthCheck<O = Record<string, unknown>>(
  def: Definition<HealthCheckPlugin<O>>,
): HealthCheckPlugin<O> {
  return { ...def, kind: 'healthcheck' };
}
export function definePassthrough<O = Record<string, unknown>>(
  def: Definition<PassthroughPlugin<O>>,
): PassthroughPlugin<O> {
  return { ...def, kind: 'passthrough' };
}
export function defineDataplane<O = Record<string, unknown>>(
  def: Definition<DataplanePlugin<O>>,
): DataplanePlugin<O> {
  return { ...def, kind: 'dataplane' };
}
