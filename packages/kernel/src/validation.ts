import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { isIP } from 'node:net';
import { formatDuration, parseDuration } from './duration.js';
import { parseEndpoint } from './endpoint.js';
import type { ConfigIssue } from './errors.js';
import type { JsonSchema } from './plugin.js';

export type PathSegment = string | number;

/** `['services', 0, 'realServers', 2, 'weight']` → `services[0].realServers[2].weight`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(s)) out += out ? `.${s}` : s;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** ajv's `/services/0/name` → `['services', 0, 'name']`. */
export function parsePointer(pointer: string): PathSegment[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

interface DurationBounds {
  min?: number | string;
  max?: number | string;
}

/**
 * The ajv instance every Fulcrum schema is compiled with: all errors, defaults filled in,
 * strict schemas, and Fulcrum's own vocabulary:
 * - `duration: true | { min, max }`: a number of seconds or a string with a unit; the value
 *   is replaced by milliseconds, so plugins receive numbers;
 * - `format: "endpoint"` (`127.0.0.1:80`, `[::1]:80`) and `format: "ip"`.
 */
export function createAjv(): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    allowUnionTypes: true,
    verbose: true,
  });
  ajv.addFormat('endpoint', { type: 'string', validate: (s: string) => parseEndpoint(s) !== undefined });
  ajv.addFormat('ip', { type: 'string', validate: (s: string) => isIP(s) !== 0 });
  ajv.addKeyword({
    keyword: 'duration',
    modifying: true,
    errors: true,
    schemaType: ['boolean', 'object'],
    metaSchema: {
      anyOf: [
        { type: 'boolean' },
        {
          type: 'object',
          additionalProperties: false,
          properties: { min: { type: ['number', 'string'] }, max: { type: ['number', 'string'] } },
        },
      ],
    },
    validate: function validateDuration(
      this: unknown,
      schema: boolean | DurationBounds,
      data: unknown,
      _parent?: unknown,
      ctx?: { parentData: Record<string | number, unknown>; parentDataProperty: string | number },
    ): boolean {
      if (schema === false) return true;
      const fail = (message: string) => {
        (validateDuration as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: 'duration', message, params: {} },
        ];
        return false;
      };
      const ms = parseDuration(data);
      if (ms === undefined)
        return fail('must be a duration: a number of seconds, or a string such as "500ms", "2s", "1m"');
      const bounds = typeof schema === 'object' ? schema : {};
      const min = bounds.min === undefined ? undefined : parseDuration(bounds.min);
      const max = bounds.max === undefined ? undefined : parseDuration(bounds.max);
      if (min !== undefined && ms < min) return fail(`must be at least ${formatDuration(min)}`);
      if (max !== undefined && ms > max) return fail(`must be at most ${formatDuration(max)}`);
      if (ctx?.parentData !== undefined) ctx.parentData[ctx.parentDataProperty] = ms;
      return true;
    },
  });
  return ajv;
}

let shared: Ajv | undefined;
const compiled = new WeakMap<object, ValidateFunction>();

/** Compiles (once per schema object) a plugin's options schema; throws when it is invalid. */
export function compileOptionsSchema(schema: JsonSchema): ValidateFunction {
  const hit = compiled.get(schema);
  if (hit) return hit;
  shared ??= createAjv();
  const fn = shared.compile(schema);
  compiled.set(schema, fn);
  return fn;
}

/** A schema for a duration option, for plugin authors: `interval: durationSchema({ default: '2s', min: '10ms' })`. */
export function durationSchema(
  opts: {
    default?: number | string;
    min?: number | string;
    max?: number | string;
    description?: string;
  } = {},
): JsonSchema {
  const { default: def, description, ...bounds } = opts;
  return {
    duration: Object.keys(bounds).length ? bounds : true,
    ...(def !== undefined ? { default: def } : {}),
    ...(description ? { description } : {}),
  };
}

const FORMAT_MESSAGES: Record<string, string> = {
  endpoint: 'must be an address and port, such as 127.0.0.1:8080 or [::1]:8080',
  ip: 'must be an IPv4 or IPv6 address',
};

/** Turns ajv's errors into issues with operator paths; drops the noise of if/then. */
export function ajvIssues(
  errors: readonly ErrorObject[] | null | undefined,
  prefix: readonly PathSegment[] = [],
): (ConfigIssue & { segments: PathSegment[] })[] {
  const out: (ConfigIssue & { segments: PathSegment[] })[] = [];
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    if (e.keyword === 'if') continue;
    let segments = [...prefix, ...parsePointer(e.instancePath)];
    let message = e.message ?? 'is invalid';
    const params = e.params as Record<string, unknown>;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(params.additionalProperty);
        segments = [...segments, key];
        const allowed = Object.keys((e.parentSchema?.properties as object | undefined) ?? {});
        message = `unknown key "${key}"${allowed.length ? ` (allowed: ${allowed.join(', ')})` : ''}`;
        break;
      }
      case 'required':
        message = `missing required key "${String(params.missingProperty)}"`;
        break;
      case 'enum':
        message = `must be one of: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
        break;
      case 'format':
        message = FORMAT_MESSAGES[String(params.format)] ?? message;
        break;
      case 'type':
        message = `must be ${[params.type].flat().join(' or ')}`;
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        if ((e.parentSchema as { type?: unknown } | undefined)?.type === 'integer')
          message = message.replace(/^must be/, 'must be integer');
        break;
    }
    const path = formatPath(segments);
    const key = `${path}\0${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message, segments });
  }
  return out;
}
