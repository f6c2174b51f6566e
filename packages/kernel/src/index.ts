export { createKernel, createKernelContainer, Tokens, type KernelOptions } from './container.js';
export { Kernel, type ApplyResult, type KernelDeps } from './kernel.js';
export { KERNEL_VERSION } from './version.js';
export type { ConnectionEntry, ConnectionQuery, ServerStatus, ServiceStatus } from './status.js';

export {
  defineScheduler,
  defineHealthCheck,
  definePassthrough,
  defineDataplane,
  PLUGIN_KINDS,
  type AnyPlugin,
  type Capability,
  type DataplaneInstance,
  type DataplanePlugin,
  type HealthCheckInstance,
  type HealthCheckPlugin,
  type HealthTarget,
  type HealthVerdict,
  type HealthWatch,
  type JsonSchema,
  type PassthroughInstance,
  type PassthroughPlugin,
  type PluginContext,
  type PluginKind,
  type SchedulerInstance,
  type SchedulerPlugin,
  type ServiceInfo,
} from './plugin.js';

export {
  checkPlan,
  planHash,
  PlanExecutor,
  HASH_FIELDS,
  LEAST_CONNECTION_FORMULAS,
  MAX_PLAN_ENTRIES,
  PLAN_KINDS,
  type ConnectionTuple,
  type HashField,
  type HashPlan,
  type LeastConnectionsPlan,
  type SchedulePlan,
  type SequencePlan,
  type ServerLoad,
} from './plan.js';
export { fmix32, resolveUnavailable } from './hash-plan.js';

export {
  serverKey,
  type AdminSpec,
  type DataplaneChange,
  type FulcrumConfig,
  type OnFailure,
  type PassthroughSettings,
  type PluginUse,
  type Protocol,
  type RealServerSpec,
  type RealServerView,
  type RetiredServer,
  type NotifySpec,
  type QuorumState,
  type DrainPolicy,
  type ServerHealth,
  type ServiceSnapshot,
  type ServiceSpec,
  type ServiceView,
} from './service.js';
export type { ConfigInput, DurationInput, PluginRef, RealServerInput, ServiceInput } from './input.js';

export { ConfigCompiler, type CompiledConfig } from './config.js';
export { parseConfigText, readConfigFile, objectSource, type ConfigSource } from './config-source.js';
export {
  configSchema,
  serviceSchema,
  realServerSchema,
  DEFAULT_DATAPLANE,
  DEFAULT_SCHEDULER,
  type ResolvedPlugins,
} from './schema.js';
export { createAjv, compileOptionsSchema, durationSchema, formatPath } from './validation.js';
export { PluginRegistry, conventionalPackages } from './registry.js';

export {
  ConfigError,
  DataplaneError,
  ErrorCodes,
  FulcrumError,
  PluginError,
  formatIssue,
  isFulcrumError,
  type ConfigIssue,
  type ErrorCode,
} from './errors.js';
export {
  EventBus,
  type FulcrumEventMap,
  type FulcrumEventName,
  type ServerRef,
  type ConnectionCloseReason,
  type ConnectionFailureReason,
} from './events.js';
export { MetricsRegistry } from './metrics.js';
export { aggregateHealth, type AggregateHealth } from './health.js';
export { buildView, nextQuorum, type Verdicts } from './view.js';
export { ManualClock, systemClock, type Clock, type TimerHandle } from './clock.js';
export { silentLogger, type Logger } from './logger.js';
export { parseDuration, formatDuration } from './duration.js';
export { parseEndpoint, formatEndpoint, type Endpoint } from './endpoint.js';
