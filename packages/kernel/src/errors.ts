/**
 * Every error Fulcrum raises on purpose carries a stable `code` that users can search for
 * and code can branch on (Fastify's FST_ERR_*, Rollup's PLUGIN_ERROR). The table in the
 * kernel README lists each code with its meaning.
 */
export const ErrorCodes = {
  CONFIG_INVALID: 'FULCRUM_CONFIG_INVALID',
  CONFIG_READ: 'FULCRUM_CONFIG_READ',
  CONFIG_PARSE: 'FULCRUM_CONFIG_PARSE',
  PLUGIN_NOT_FOUND: 'FULCRUM_PLUGIN_NOT_FOUND',
  PLUGIN_INVALID: 'FULCRUM_PLUGIN_INVALID',
  PLUGIN_KIND: 'FULCRUM_PLUGIN_KIND',
  PLUGIN_DUPLICATE: 'FULCRUM_PLUGIN_DUPLICATE',
  PLUGIN_FAILED: 'FULCRUM_PLUGIN_FAILED',
  KERNEL_VERSION: 'FULCRUM_KERNEL_VERSION',
  CAPABILITY: 'FULCRUM_CAPABILITY',
  PLAN_INVALID: 'FULCRUM_PLAN_INVALID',
  SERVICE_NOT_FOUND: 'FULCRUM_SERVICE_NOT_FOUND',
  SERVER_NOT_FOUND: 'FULCRUM_SERVER_NOT_FOUND',
  DATAPLANE: 'FULCRUM_DATAPLANE',
  STATE: 'FULCRUM_STATE',
} as const;

/** The kernel's codes; plugin packages add their own, always prefixed `FULCRUM_`. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes] | `FULCRUM_${string}`;

export interface FulcrumErrorOptions {
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class FulcrumError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: FulcrumErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FulcrumError';
    this.code = code;
    this.details = options.details ?? {};
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, details: this.details };
  }
}

/** One problem found in a configuration, located as precisely as the source allows. */
export interface ConfigIssue {
  /** JSON path in the operator's notation: `services[0].realServers[2].weight`. */
  path: string;
  message: string;
  /** The code of the underlying problem when it is not a plain schema error. */
  code?: ErrorCode;
  file?: string;
  line?: number;
  column?: number;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.file
    ? `${issue.file}${issue.line ? `:${issue.line}:${issue.column ?? 1}` : ''} `
    : issue.line
      ? `line ${issue.line}:${issue.column ?? 1} `
      : '';
  return `${where}${issue.path || '(root)'}: ${issue.message}`;
}

/**
 * A configuration (a file, an API body or a run-time change) that cannot be applied.
 * Carries every issue found, not just the first; `code` is the most specific one shared
 * by all issues, or FULCRUM_CONFIG_INVALID.
 */
export class ConfigError extends FulcrumError {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[], code?: ErrorCode) {
    const first = issues[0];
    const codes = new Set(issues.map((i) => i.code ?? ErrorCodes.CONFIG_INVALID));
    const chosen = code ?? (codes.size === 1 ? [...codes][0]! : ErrorCodes.CONFIG_INVALID);
    const head =
      issues.length === 1 && first ? formatIssue(first) : `${issues.length} problems in the configuration`;
    const body = issues.length > 1 ? '\n' + issues.map((i) => `  - ${formatIssue(i)}`).join('\n') : '';
    super(chosen, head + body, { details: { issues } });
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** Wraps anything a plugin throws, naming the plugin and the hook (Rollup's PLUGIN_ERROR). */
export class PluginError extends FulcrumError {
  readonly plugin: string;
  readonly hook: string;

  constructor(plugin: string, hook: string, cause: unknown, code: ErrorCode = ErrorCodes.PLUGIN_FAILED) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(code, `plugin "${plugin}" failed in ${hook}(): ${reason}`, { cause, details: { plugin, hook } });
    this.name = 'PluginError';
    this.plugin = plugin;
    this.hook = hook;
  }
}

/** An error reported by a dataplane; native dataplanes map their error codes to this. */
export class DataplaneError extends FulcrumError {
  constructor(message: string, options: FulcrumErrorOptions & { code?: ErrorCode } = {}) {
    super(options.code ?? ErrorCodes.DATAPLANE, message, options);
    this.name = 'DataplaneError';
  }
}

export function isFulcrumError(e: unknown): e is FulcrumError {
  return e instanceof FulcrumError;
}
