import { isDeepStrictEqual } from 'node:util';
import type { Clock } from './clock.js';
import { ConfigCompiler, type CompiledConfig } from './config.js';
import { objectSource, type ConfigSource } from './config-source.js';
import { parseEndpoint } from './endpoint.js';
import { ConfigError, DataplaneError, ErrorCodes, FulcrumError, PluginError } from './errors.js';
import type { EventBus } from './events.js';
import { aggregateHealth } from './health.js';
import { buildView } from './view.js';
import type { Logger } from './logger.js';
import type { MetricsRegistry } from './metrics.js';
import { checkPlan } from './plan.js';
import type {
  AnyPlugin,
  DataplaneInstance,
  DataplanePlugin,
  HealthCheckInstance,
  HealthVerdict,
  HealthWatch,
  PassthroughPlugin,
  PluginContext,
  PluginKind,
  SchedulerInstance,
  ServiceInfo,
} from './plugin.js';
import type { PluginRegistry } from './registry.js';
import type {
  DataplaneChange,
  FulcrumConfig,
  PassthroughSettings,
  PluginUse,
  RetiredServer,
  ServiceSnapshot,
  ServiceSpec,
} from './service.js';
import { serverKey } from './service.js';
import type { ConfigInput, RealServerInput, ServiceInput } from './input.js';
import { KernelMetrics } from './kernel-metrics.js';

interface CheckRuntime {
  label: string;
  use: PluginUse;
  plugin: AnyPlugin;
  instance: HealthCheckInstance;
}

interface ServiceRuntime {
  spec: ServiceSpec;
  scheduler: { use: PluginUse; plugin: AnyPlugin; instance: SchedulerInstance };
  passthrough?: { use: PluginUse; plugin: AnyPlugin; settings: PassthroughSettings };
  checks: CheckRuntime[];
  /** server key → checker label → last verdict */
  verdicts: Map<string, Map<string, HealthVerdict>>;
  watches: Map<string, HealthWatch[]>;
  snapshot?: ServiceSnapshot;
}

/** What the kernel is built from; the composition root (createKernel) fills it in. */
export interface KernelDeps {
  version: string;
  registry: PluginRegistry;
  events: EventBus;
  metrics: MetricsRegistry;
  clock: Clock;
  logger: Logger;
}

export interface ApplyResult {
  version: number;
  added: string[];
  updated: string[];
  removed: string[];
}

const isConfigSource = (v: unknown): v is ConfigSource =>
  typeof v === 'object' && v !== null && typeof (v as ConfigSource).locate === 'function' && 'data' in v;

/**
 * The Fulcrum kernel: holds the plugins, the applied configuration and the running
 * services, and hands the dataplane immutable snapshots. Every change — a whole config,
 * or one server's weight through the API — goes through the same path: validate the
 * whole resulting configuration, prepare plugin instances and plans, apply to the
 * dataplane, then commit. A change rejected anywhere on that path leaves the running
 * state exactly as it was.
 */
export class Kernel {
  readonly version: string;
  readonly registry: PluginRegistry;
  readonly events: EventBus;
  readonly metrics: MetricsRegistry;
  readonly clock: Clock;
  readonly logger: Logger;

  readonly #compiler: ConfigCompiler;
  readonly #kmetrics: KernelMetrics;
  #dataplane?: { use: PluginUse; plugin: DataplanePlugin<never>; instance: DataplaneInstance };
  #services = new Map<string, ServiceRuntime>();
  #applied?: { compiled: CompiledConfig; input: ConfigInput };
  #configVersion = 0;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(deps: KernelDeps) {
    this.version = deps.version;
    this.registry = deps.registry;
    this.events = deps.events;
    this.metrics = deps.metrics;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.#compiler = new ConfigCompiler(deps.registry);
    this.#kmetrics = new KernelMetrics(deps.metrics);
  }

  /** Registers plugins explicitly (importing a package never registers anything by itself). */
  use(...plugins: AnyPlugin[]): this {
    for (const p of plugins) this.registry.register(p);
    return this;
  }

  /** Validates a configuration without applying it. */
  validate(input: ConfigInput | ConfigSource): Promise<CompiledConfig> {
    return this.#compiler.compile(isConfigSource(input) ? input : objectSource(input));
  }

  /** Applies a whole configuration: the first call starts the dataplane. */
  apply(input: ConfigInput | ConfigSource): Promise<ApplyResult> {
    return this.#serial(() => this.#apply(isConfigSource(input) ? input : objectSource(input)));
  }

  /** The applied configuration, normalised; undefined before the first apply. */
  get config(): FulcrumConfig | undefined {
    return this.#applied?.compiled.config;
  }

  /** The applied configuration as it was given (durations as written), for dumps and edits. */
  get input(): ConfigInput | undefined {
    return this.#applied ? structuredClone(this.#applied.input) : undefined;
  }

  /** Increases by one with every applied change. */
  get configVersion(): number {
    return this.#configVersion;
  }

  get dataplane(): DataplaneInstance | undefined {
    return this.#dataplane?.instance;
  }

  /** What every dataplane currently serves: one snapshot per service. */
  snapshots(): ServiceSnapshot[] {
    return [...this.#services.values()].map((rt) => rt.snapshot!);
  }

  snapshot(service: string): ServiceSnapshot {
    return this.#runtime(service).snapshot!;
  }

  /** Every checker's last verdict for each server of a service: server key → checker → verdict. */
  health(service: string): Record<string, Record<string, HealthVerdict>> {
    const rt = this.#runtime(service);
    return Object.fromEntries(
      rt.spec.realServers.map((rs) => {
        const key = serverKey(rs);
        return [key, Object.fromEntries(structuredClone([...(rt.verdicts.get(key) ?? new Map())]))];
      }),
    );
  }

  addService(service: ServiceInput): Promise<ApplyResult> {
    return this.#edit((cfg) => void (cfg.services = [...(cfg.services ?? []), service]));
  }

  /** Replaces the given fields of a service (`realServers` replaces the whole list). */
  updateService(name: string, patch: Partial<ServiceInput>): Promise<ApplyResult> {
    return this.#edit((cfg) => {
      const i = serviceIndex(cfg, name);
      cfg.services![i] = { ...cfg.services![i]!, ...patch };
    });
  }

  removeService(name: string): Promise<ApplyResult> {
    return this.#edit((cfg) => void cfg.services!.splice(serviceIndex(cfg, name), 1));
  }

  addRealServer(service: string, server: RealServerInput): Promise<ApplyResult> {
    return this.#edit((cfg) => {
      const svc = cfg.services![serviceIndex(cfg, service)]!;
      svc.realServers = [...(svc.realServers ?? []), server];
    });
  }

  updateRealServer(service: string, server: string, patch: Partial<RealServerInput>): Promise<ApplyResult> {
    return this.#edit((cfg) => {
      const svc = cfg.services![serviceIndex(cfg, service)]!;
      const j = serverIndex(svc, server);
      svc.realServers![j] = { ...svc.realServers![j]!, ...patch };
    });
  }

  setWeight(service: string, server: string, weight: number): Promise<ApplyResult> {
    return this.updateRealServer(service, server, { weight });
  }

  /** Takes a server out gracefully: no new connections, existing ones drained per the service's policy. */
  drainRealServer(service: string, server: string): Promise<ApplyResult> {
    return this.updateRealServer(service, server, { drain: true });
  }

  removeRealServer(service: string, server: string): Promise<ApplyResult> {
    return this.#edit((cfg) => {
      const svc = cfg.services![serviceIndex(cfg, service)]!;
      svc.realServers!.splice(serverIndex(svc, server), 1);
    });
  }

  /** Stops health checks and the dataplane; the kernel cannot be used afterwards. */
  close(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed) return;
      this.#closed = true;
      for (const rt of this.#services.values()) this.#dispose(rt, undefined);
      this.#services.clear();
      const dp = this.#dataplane;
      this.#dataplane = undefined;
      if (dp) await this.#guard(dp.plugin.name, 'stop', () => dp.instance.stop());
    });
  }

  // ---- the change path ---------------------------------------------------------------------

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#closed) throw new FulcrumError(ErrorCodes.STATE, 'the kernel is closed');
      return fn();
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #edit(mutate: (cfg: ConfigInput) => void): Promise<ApplyResult> {
    return this.#serial(async () => {
      if (!this.#applied)
        throw new FulcrumError(ErrorCodes.STATE, 'apply a configuration before changing services');
      const next = structuredClone(this.#applied.input);
      mutate(next);
      // An API edit was not written in the file: its problems name no file.
      return this.#apply(objectSource(next));
    });
  }

  async #apply(source: ConfigSource): Promise<ApplyResult> {
    let compiled: CompiledConfig;
    try {
      compiled = await this.#compiler.compile(source);
      if (this.#dataplane && !isDeepStrictEqual(this.#dataplane.use, compiled.config.dataplane)) {
        throw new ConfigError([
          {
            path: 'dataplane',
            message: 'the dataplane cannot change while running: restart with the new configuration',
          },
        ]);
      }
    } catch (e) {
      if (e instanceof ConfigError) {
        this.#kmetrics.applies.inc({ result: 'rejected' });
        this.events.emit('config:rejected', { issues: e.issues });
      }
      throw e;
    }
    const next = compiled.config;
    const created: (() => void)[] = [];

    let dataplane = this.#dataplane;
    const startingDataplane = !dataplane;
    if (!dataplane) {
      const plugin = compiled.plugin('dataplane', next.dataplane.name);
      const instance = this.#create(plugin, next.dataplane, 'dataplane', undefined) as DataplaneInstance;
      dataplane = { use: next.dataplane, plugin, instance };
    }

    // Prepare: new plugin instances and plans. Nothing running is touched yet.
    const prepared = new Map<string, ServiceRuntime>();
    const change: { added: ServiceSnapshot[]; updated: ServiceSnapshot[]; removed: string[] } = {
      added: [],
      updated: [],
      removed: [],
    };
    try {
      next.services.forEach((spec, i) => {
        const old = this.#services.get(spec.name);
        const rt = this.#prepare(spec, i, old, compiled, created);
        const snapshot = this.#snapshot(rt, old?.snapshot, retiredByChange(old?.spec, spec));
        rt.snapshot = snapshot;
        prepared.set(spec.name, rt);
        if (!old) change.added.push(snapshot);
        else if (old.spec.protocol !== spec.protocol || !isDeepStrictEqual(old.spec.listen, spec.listen)) {
          change.removed.push(spec.name);
          change.added.push(snapshot);
        } else if (snapshot !== old.snapshot) change.updated.push(snapshot);
      });
      for (const name of this.#services.keys()) if (!prepared.has(name)) change.removed.push(name);

      if (startingDataplane)
        await this.#guard(dataplane.plugin.name, 'start', () => dataplane.instance.start(), true);
      if (change.added.length || change.updated.length || change.removed.length) {
        await this.#guard(dataplane.plugin.name, 'apply', () => dataplane.instance.apply(change), true);
      }
    } catch (e) {
      for (const undo of created) undo();
      if (startingDataplane) await dataplane.instance.stop().catch(() => undefined);
      throw e;
    }

    // Commit.
    const previous = this.#services;
    this.#services = prepared;
    this.#dataplane = dataplane;
    this.#applied = {
      compiled,
      input: structuredClone(source.data) as ConfigInput,
    };
    this.#configVersion++;
    for (const [name, old] of previous) this.#dispose(old, prepared.get(name));
    for (const rt of prepared.values()) this.#startWatches(rt);
    this.#announce(previous, prepared);
    const changes = change.added.length + change.updated.length + change.removed.length;
    this.#kmetrics.applies.inc({ result: 'applied' });
    this.#kmetrics.version.set(this.#configVersion);
    this.events.emit('config:applied', { version: this.#configVersion, changes });
    this.logger.info(
      { event: 'config_applied', version: this.#configVersion, ...summary(change) },
      'configuration applied',
    );
    return { version: this.#configVersion, ...summary(change) };
  }

  /** A runtime for `spec`, reusing the old one's plugin instances where their use is unchanged. */
  #prepare(
    spec: ServiceSpec,
    index: number,
    old: ServiceRuntime | undefined,
    compiled: CompiledConfig,
    created: (() => void)[],
  ): ServiceRuntime {
    const info: ServiceInfo = { name: spec.name, protocol: spec.protocol, listen: spec.listen };
    const at = `services[${index}]`;
    const same = (
      a: { use: PluginUse; plugin: AnyPlugin } | undefined,
      use: PluginUse | undefined,
      kind: PluginKind,
    ) =>
      a !== undefined &&
      use !== undefined &&
      isDeepStrictEqual(a.use, use) &&
      a.plugin === compiled.plugin(kind, use.name);

    const schedulerPlugin = compiled.plugin('scheduler', spec.scheduler.name);
    const scheduler = same(old?.scheduler, spec.scheduler, 'scheduler')
      ? old!.scheduler
      : {
          use: spec.scheduler,
          plugin: schedulerPlugin,
          instance: this.#create(
            schedulerPlugin,
            spec.scheduler,
            `${at}.scheduler`,
            info,
          ) as SchedulerInstance,
        };

    let passthrough: ServiceRuntime['passthrough'];
    if (spec.passthrough) {
      if (same(old?.passthrough, spec.passthrough, 'passthrough')) passthrough = old!.passthrough;
      else {
        const plugin = compiled.plugin('passthrough', spec.passthrough.name) as PassthroughPlugin<never>;
        const inst = this.#create(plugin, spec.passthrough, `${at}.passthrough`, info) as {
          settings: Record<string, unknown>;
        };
        passthrough = {
          use: spec.passthrough,
          plugin,
          settings: Object.freeze({
            name: plugin.name,
            requires: [...plugin.requires],
            settings: structuredClone(inst.settings ?? {}),
          }),
        };
      }
    }

    const checksSame =
      !!old &&
      old.checks.length === spec.healthChecks.length &&
      spec.healthChecks.every((u, j) => same(old.checks[j], u, 'healthcheck'));
    let checks: CheckRuntime[];
    if (checksSame) checks = old!.checks;
    else {
      checks = [];
      spec.healthChecks.forEach((use, j) => {
        const plugin = compiled.plugin('healthcheck', use.name);
        const instance = this.#create(plugin, use, `${at}.healthChecks[${j}]`, info) as HealthCheckInstance;
        checks.push({
          label: spec.healthChecks.length > 1 ? `${plugin.name}#${j}` : plugin.name,
          use,
          plugin,
          instance,
        });
        created.push(() => this.#closeCheck(checks[j]!));
      });
    }

    const keep = new Set(spec.realServers.map(serverKey));
    const verdicts = new Map<string, Map<string, HealthVerdict>>();
    const watches = new Map<string, HealthWatch[]>();
    if (old && checksSame) {
      for (const [k, v] of old.verdicts) if (keep.has(k)) verdicts.set(k, v);
      for (const [k, w] of old.watches) if (keep.has(k)) watches.set(k, w);
    }
    return { spec, scheduler, ...(passthrough ? { passthrough } : {}), checks, verdicts, watches };
  }

  /** Builds the service's snapshot; returns `previous` itself when nothing changed. */
  #snapshot(
    rt: ServiceRuntime,
    previous: ServiceSnapshot | undefined,
    retired: RetiredServer[],
  ): ServiceSnapshot {
    const { spec } = rt;
    const { view, quorum } = buildView(spec, rt.verdicts, previous?.quorum);
    const realServers = view.realServers;
    const plugin = rt.scheduler.plugin.name;
    const started = performance.now();
    const plan = this.#call(plugin, 'compile', () => rt.scheduler.instance.compile(view));
    this.#kmetrics.compileSeconds.observe({ scheduler: plugin }, (performance.now() - started) / 1000);
    const problems = checkPlan(plan, realServers.length);
    if (problems.length) {
      throw new PluginError(
        plugin,
        'compile',
        new Error(`the plan is malformed: ${problems.join('; ')}`),
        ErrorCodes.PLAN_INVALID,
      );
    }
    const body = {
      ...view,
      plan,
      ...(spec.persistence ? { persistence: spec.persistence } : {}),
      ...(rt.passthrough ? { passthrough: rt.passthrough.settings } : {}),
      ...(spec.synproxy ? { synproxy: true } : {}),
      onFailure: spec.onFailure,
      drain: spec.drain,
      ...(spec.maxConnections !== undefined ? { maxConnections: spec.maxConnections } : {}),
      quorum,
      localAddresses: Object.freeze([...spec.localAddresses]),
      retired: Object.freeze(retired.map((r) => Object.freeze(r))),
    };
    if (
      previous &&
      retired.length === 0 &&
      isDeepStrictEqual({ ...previous, version: 0, retired: [] }, { ...body, version: 0 })
    )
      return previous;
    return Object.freeze({ ...body, version: (previous?.version ?? 0) + 1 });
  }

  // ---- health ------------------------------------------------------------------------------

  #startWatches(rt: ServiceRuntime): void {
    const info: ServiceInfo = { name: rt.spec.name, protocol: rt.spec.protocol, listen: rt.spec.listen };
    for (const rs of rt.spec.realServers) {
      const key = serverKey(rs);
      if (rt.watches.has(key) || rt.checks.length === 0) continue;
      const watches: HealthWatch[] = [];
      rt.watches.set(key, watches);
      for (const check of rt.checks) {
        const report = (verdict: HealthVerdict) => this.#onVerdict(info.name, check, key, verdict);
        const target = { service: info, server: key, address: rs.address, port: rs.port, weight: rs.weight };
        try {
          watches.push(check.instance.watch(target, report));
        } catch (e) {
          this.#pluginFailed(new PluginError(check.plugin.name, 'watch', e));
        }
      }
    }
  }

  /**
   * A verdict from `check` about `server`. Watches outlive a runtime when a change keeps the
   * service's checks, so the current runtime is looked up each time; verdicts from checks
   * or servers no longer configured are dropped.
   */
  #onVerdict(service: string, check: CheckRuntime, server: string, verdict: HealthVerdict): void {
    const rt = this.#services.get(service);
    if (!rt || !rt.checks.includes(check) || !rt.watches.has(server)) return;
    const byChecker = rt.verdicts.get(server) ?? new Map<string, HealthVerdict>();
    const before = byChecker.get(check.label);
    // Keep the latest reason and detail even when the verdict changes nothing (UP-WARM is still up).
    byChecker.set(check.label, {
      up: verdict.up,
      reason: verdict.reason,
      ...(verdict.weight !== undefined ? { weight: verdict.weight } : {}),
      ...(verdict.detail !== undefined ? { detail: structuredClone(verdict.detail) } : {}),
    });
    rt.verdicts.set(server, byChecker);
    if (before && before.up === verdict.up && before.weight === verdict.weight) return;
    if (!before || before.up !== verdict.up) {
      this.events.emit('server:health', {
        service,
        server,
        health: verdict.up ? 'up' : 'down',
        checker: check.label,
        reason: verdict.reason,
      });
      this.logger.info(
        {
          event: 'server_health',
          service,
          server,
          checker: check.label,
          up: verdict.up,
          reason: verdict.reason,
        },
        `server ${server} ${verdict.up ? 'up' : 'down'}`,
      );
    }
    void this.#serial(() => this.#refresh(service, server, verdict.up)).catch((e) =>
      this.#pluginFailed(e as Error),
    );
  }

  /** Recompiles one service after a health change and swaps its plan in the dataplane. */
  async #refresh(service: string, server: string, up: boolean): Promise<void> {
    const rt = this.#services.get(service);
    if (!rt || !this.#dataplane) return;
    const action = up ? undefined : failureAction(rt.spec.onFailure);
    const previous = rt.snapshot!;
    const snapshot = this.#snapshot(rt, previous, action ? [{ server, action }] : []);
    if (snapshot === previous) return;
    const dp = this.#dataplane;
    await this.#guard(
      dp.plugin.name,
      'apply',
      () => dp.instance.apply({ added: [], updated: [snapshot], removed: [] }),
      true,
    );
    rt.snapshot = snapshot;
    this.#announceWeights(service, previous, snapshot, 'health check');
  }

  // ---- plugins -----------------------------------------------------------------------------

  #context(
    kind: PluginKind,
    name: string,
    configPath: string,
    service: ServiceInfo | undefined,
  ): PluginContext {
    return Object.freeze({
      kernelVersion: this.version,
      plugin: Object.freeze({ kind, name }),
      configPath,
      ...(service ? { service } : {}),
      logger: this.logger.child({ plugin: name, ...(service ? { service: service.name } : {}) }),
      metrics: this.metrics,
      events: this.events,
      clock: this.clock,
    });
  }

  #create(plugin: AnyPlugin, use: PluginUse, configPath: string, service: ServiceInfo | undefined): unknown {
    const ctx = this.#context(plugin.kind, plugin.name, configPath, service);
    const instance = this.#call(plugin.name, 'create', () =>
      (plugin.create as (c: PluginContext, o: unknown) => unknown)(ctx, structuredClone(use.options)),
    );
    if (
      instance === null ||
      typeof instance !== 'object' ||
      typeof (instance as Promise<unknown>).then === 'function'
    ) {
      throw new PluginError(
        plugin.name,
        'create',
        new Error('create() must return the instance object synchronously'),
        ErrorCodes.PLUGIN_INVALID,
      );
    }
    return instance;
  }

  #call<T>(plugin: string, hook: string, fn: () => T): T {
    try {
      return fn();
    } catch (e) {
      throw e instanceof FulcrumError ? e : new PluginError(plugin, hook, e);
    }
  }

  async #guard(plugin: string, hook: string, fn: () => Promise<void>, asDataplane = false): Promise<void> {
    try {
      await fn();
    } catch (e) {
      if (e instanceof FulcrumError) throw e;
      throw asDataplane
        ? new DataplaneError(`dataplane "${plugin}" failed in ${hook}(): ${(e as Error)?.message ?? e}`, {
            cause: e,
            details: { plugin, hook },
          })
        : new PluginError(plugin, hook, e);
    }
  }

  #pluginFailed(error: Error): void {
    const plugin = error instanceof PluginError ? error.plugin : 'kernel';
    const hook = error instanceof PluginError ? error.hook : 'unknown';
    this.#kmetrics.pluginErrors.inc({ plugin, hook });
    this.logger.error({ event: 'plugin_error', plugin, hook, err: error }, error.message);
    this.events.emit('plugin:error', { plugin, hook, error });
  }

  #closeCheck(check: CheckRuntime): void {
    try {
      check.instance.close?.();
    } catch (e) {
      this.#pluginFailed(new PluginError(check.plugin.name, 'close', e));
    }
  }

  /** Stops what `old` ran that `next` (its successor, if any) does not carry over. */
  #dispose(old: ServiceRuntime, next: ServiceRuntime | undefined): void {
    for (const [key, watches] of old.watches) {
      if (next?.watches.get(key) === watches) continue;
      for (const w of watches) {
        try {
          w.stop();
        } catch (e) {
          this.#pluginFailed(new PluginError('healthcheck', 'stop', e));
        }
      }
    }
    if (next?.checks !== old.checks) for (const c of old.checks) this.#closeCheck(c);
  }

  // ---- events and metrics ------------------------------------------------------------------

  #announce(previous: Map<string, ServiceRuntime>, next: Map<string, ServiceRuntime>): void {
    for (const [name, old] of previous) {
      if (next.has(name)) continue;
      for (const rs of old.snapshot!.realServers) this.#kmetrics.forget(name, rs.key);
      this.events.emit('service:removed', { service: name });
    }
    for (const [name, rt] of next) {
      const old = previous.get(name);
      const snap = rt.snapshot!;
      if (!old) this.events.emit('service:added', { service: name });
      else if (old.snapshot !== snap)
        this.events.emit('service:updated', { service: name, changes: specChanges(old.spec, rt.spec) });
      const before = new Map((old?.snapshot?.realServers ?? []).map((r) => [r.key, r]));
      const after = new Set(snap.realServers.map((r) => r.key));
      for (const key of before.keys()) {
        if (after.has(key)) continue;
        this.#kmetrics.forget(name, key);
        this.events.emit('server:removed', { service: name, server: key });
      }
      for (const rs of snap.realServers)
        if (!before.has(rs.key))
          this.events.emit('server:added', { service: name, server: rs.key, weight: rs.weight });
      this.#announceWeights(name, old?.snapshot, snap, 'configuration');
      if (!old || old.snapshot !== snap)
        this.events.emit('plan:compiled', {
          service: name,
          kind: snap.plan.kind,
          servers: snap.realServers.length,
        });
    }
  }

  #announceWeights(
    service: string,
    before: ServiceSnapshot | undefined,
    after: ServiceSnapshot,
    reason: string,
  ): void {
    const prev = new Map((before?.realServers ?? []).map((r) => [r.key, r]));
    const verdicts = this.#services.get(service)?.verdicts;
    for (const rs of after.realServers) {
      this.#kmetrics.server(service, rs);
      const p = prev.get(rs.key);
      if (p && p.weight !== rs.weight)
        this.events.emit('server:weight', {
          service,
          server: rs.key,
          weight: rs.weight,
          previous: p.weight,
          reason,
        });
      if (p && p.health !== rs.health) {
        const why = aggregateHealth(rs.configuredWeight, verdicts?.get(rs.key) ?? new Map()).reason;
        this.events.emit('server:state', { service, server: rs.key, health: rs.health, reason: why });
      }
    }
    if (before && before.quorum.up !== after.quorum.up) {
      this.events.emit('service:quorum', { service, ...after.quorum });
      this.logger.warn(
        { event: 'service_quorum', service, ...after.quorum },
        `service ${service} quorum ${after.quorum.up ? 'gained' : 'lost'}: live weight ${after.quorum.liveWeight}, quorum ${after.quorum.required}`,
      );
    }
  }

  #runtime(service: string): ServiceRuntime {
    const rt = this.#services.get(service);
    if (!rt)
      throw new FulcrumError(ErrorCodes.SERVICE_NOT_FOUND, `no service named "${service}"`, {
        details: { service },
      });
    return rt;
  }
}

function serviceIndex(cfg: ConfigInput, name: string): number {
  const i = (cfg.services ?? []).findIndex((s) => s?.name === name);
  if (i < 0)
    throw new FulcrumError(ErrorCodes.SERVICE_NOT_FOUND, `no service named "${name}"`, {
      details: { service: name },
    });
  return i;
}

function serverIndex(svc: ServiceInput, server: string): number {
  const want = parseEndpoint(server);
  const j = (svc.realServers ?? []).findIndex((r) => {
    const e = typeof r?.address === 'string' ? parseEndpoint(r.address) : undefined;
    return !!e && !!want && e.address === want.address && e.port === want.port;
  });
  if (j < 0)
    throw new FulcrumError(
      ErrorCodes.SERVER_NOT_FOUND,
      `service "${svc.name}" has no real server ${server}`,
      { details: { service: svc.name, server } },
    );
  return j;
}

/** What happens to a failed or removed server's connections under a service's onFailure. */
function failureAction(onFailure: ServiceSpec['onFailure']): RetiredServer['action'] | undefined {
  return onFailure === 'remove' ? 'expire' : onFailure === 'drain' ? 'drain' : undefined;
}

/**
 * Servers whose connections change fate between two specs of a service: removed ones
 * (per onFailure; `inhibit` lets their connections run out, as IPVS without
 * expire_nodest_conn) and ones the operator newly set to drain.
 */
function retiredByChange(old: ServiceSpec | undefined, next: ServiceSpec): RetiredServer[] {
  if (!old) return [];
  const before = new Map(old.realServers.map((r) => [serverKey(r), r]));
  const after = new Set(next.realServers.map(serverKey));
  const out: RetiredServer[] = [];
  const action = failureAction(next.onFailure);
  if (action) for (const key of before.keys()) if (!after.has(key)) out.push({ server: key, action });
  for (const rs of next.realServers)
    if (rs.drain && !before.get(serverKey(rs))?.drain) out.push({ server: serverKey(rs), action: 'drain' });
  return out;
}

function specChanges(a: ServiceSpec, b: ServiceSpec): string[] {
  return (Object.keys({ ...a, ...b }) as (keyof ServiceSpec)[]).filter((k) => !isDeepStrictEqual(a[k], b[k]));
}

function summary(change: DataplaneChange): Omit<ApplyResult, 'version'> {
  const removed = change.removed.filter((n) => !change.added.some((s) => s.name === n));
  const replaced = change.added.filter((s) => change.removed.includes(s.name)).map((s) => s.name);
  return {
    added: change.added.map((s) => s.name).filter((n) => !replaced.includes(n)),
    updated: [...change.updated.map((s) => s.name), ...replaced],
    removed,
  };
}
