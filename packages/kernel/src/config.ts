import type { ValidateFunction } from 'ajv';
import type { ConfigSource } from './config-source.js';
import { parseEndpoint } from './endpoint.js';
import { ConfigError, ErrorCodes, isFulcrumError, type ConfigIssue, type ErrorCode } from './errors.js';
import type { AnyPlugin, DataplanePlugin, PassthroughPlugin, PluginKind } from './plugin.js';
import type { PluginRegistry } from './registry.js';
import { configSchema, DEFAULT_DATAPLANE, DEFAULT_SCHEDULER, type ResolvedPlugins } from './schema.js';
import type { FulcrumConfig, PluginUse, ServiceSpec } from './service.js';
import { ajvIssues, createAjv, formatPath, type PathSegment } from './validation.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A validated configuration and the plugins its names resolved to. */
export interface CompiledConfig {
  readonly config: FulcrumConfig;
  /** The input after normalisation (plugin references as objects, defaults filled in). */
  readonly normalised: unknown;
  readonly plugins: ResolvedPlugins;
  plugin<K extends PluginKind>(kind: K, name: string): Extract<AnyPlugin, { kind: K }>;
}

interface RefSite {
  kind: PluginKind;
  name: string;
  segments: PathSegment[];
}

/** `wrr` → `{ name: 'wrr', options: {} }` in place, noting where each reference is. */
function normaliseRef(
  holder: Obj,
  key: string | number,
  kind: PluginKind,
  segments: PathSegment[],
  sites: RefSite[],
  fallback?: string,
): void {
  let v = holder[key];
  if (v === undefined && fallback) v = holder[key] = fallback;
  if (typeof v === 'string' && v.length > 0) v = holder[key] = { name: v, options: {} };
  if (isObj(v) && typeof v.name === 'string' && v.name.length > 0) {
    if (v.options === undefined) v.options = {};
    sites.push({ kind, name: v.name, segments });
  }
}

function collectRefs(root: Obj): RefSite[] {
  const sites: RefSite[] = [];
  normaliseRef(root, 'dataplane', 'dataplane', ['dataplane'], sites, DEFAULT_DATAPLANE);
  if (!Array.isArray(root.services)) return sites;
  root.services.forEach((svc, i) => {
    if (!isObj(svc)) return;
    const at = ['services', i];
    normaliseRef(svc, 'scheduler', 'scheduler', [...at, 'scheduler'], sites, DEFAULT_SCHEDULER);
    if (svc.passthrough !== undefined)
      normaliseRef(svc, 'passthrough', 'passthrough', [...at, 'passthrough'], sites);
    if (Array.isArray(svc.healthChecks)) {
      const checks = svc.healthChecks as unknown as Obj;
      (svc.healthChecks as unknown[]).forEach((_, j) =>
        normaliseRef(checks, j, 'healthcheck', [...at, 'healthChecks', j], sites),
      );
    }
  });
  return sites;
}

const pluginIds = new WeakMap<AnyPlugin, number>();
let nextPluginId = 1;
const pluginId = (p: AnyPlugin) => {
  let id = pluginIds.get(p);
  if (!id) pluginIds.set(p, (id = nextPluginId++));
  return id;
};

/**
 * Turns a configuration source into a validated FulcrumConfig, or throws a ConfigError
 * with every issue found, each with its path and (for files) line and column.
 * Compiling has no side effects beyond loading plugin packages into the registry.
 */
export class ConfigCompiler {
  readonly #registry: PluginRegistry;
  readonly #ajv = createAjv();
  readonly #validators = new Map<string, ValidateFunction>();

  constructor(registry: PluginRegistry) {
    this.#registry = registry;
  }

  async compile(source: ConfigSource): Promise<CompiledConfig> {
    const issues: ConfigIssue[] = [];
    const at = (segments: readonly PathSegment[], message: string, code?: ErrorCode): ConfigIssue => {
      const pos = source.locate(segments);
      return {
        path: formatPath(segments),
        message,
        ...(code ? { code } : {}),
        ...(source.file ? { file: source.file } : {}),
        ...(pos ? { line: pos.line, column: pos.column } : {}),
      };
    };
    const fail = () => new ConfigError(issues);

    const data: unknown = structuredClone(source.data ?? {});
    if (!isObj(data)) {
      issues.push(at([], 'the configuration must be a mapping (an object)'));
      throw fail();
    }

    // Packages listed under `plugins` load first, so their short names resolve.
    if (Array.isArray(data.plugins)) {
      for (const [i, spec] of (data.plugins as unknown[]).entries()) {
        if (typeof spec !== 'string') continue;
        try {
          const loaded = await this.#registry.loadPackage(spec);
          if (!loaded)
            issues.push(
              at(
                ['plugins', i],
                `package "${spec}" is not installed (npm install ${spec})`,
                ErrorCodes.PLUGIN_NOT_FOUND,
              ),
            );
        } catch (e) {
          issues.push(
            at(['plugins', i], (e as Error).message, isFulcrumError(e) ? e.code : ErrorCodes.PLUGIN_INVALID),
          );
        }
      }
    }

    const resolved: ResolvedPlugins = new Map();
    for (const site of collectRefs(data)) {
      const byName = resolved.get(site.kind) ?? new Map<string, AnyPlugin>();
      resolved.set(site.kind, byName);
      if (byName.has(site.name)) continue;
      try {
        byName.set(site.name, await this.#registry.resolve(site.kind, site.name));
      } catch (e) {
        issues.push(
          at(
            [...site.segments, 'name'],
            (e as Error).message,
            isFulcrumError(e) ? e.code : ErrorCodes.PLUGIN_INVALID,
          ),
        );
      }
    }

    const validate = this.#validator(resolved);
    if (!validate(data)) {
      for (const issue of ajvIssues(validate.errors)) issues.push(at(issue.segments, issue.message));
    }
    if (issues.length) throw fail();

    const config = toConfig(data);
    issues.push(...semanticIssues(config, resolved, at));
    if (issues.length) throw fail();

    return {
      config,
      normalised: data,
      plugins: resolved,
      plugin: (kind, name) => resolved.get(kind)!.get(name) as never,
    };
  }

  #validator(resolved: ResolvedPlugins): ValidateFunction {
    const key = [...resolved]
      .flatMap(([kind, m]) => [...m].map(([name, p]) => `${kind}:${name}:${pluginId(p)}`))
      .sort()
      .join('|');
    let fn = this.#validators.get(key);
    if (!fn) {
      fn = this.#ajv.compile(configSchema(resolved));
      this.#validators.set(key, fn);
    }
    return fn;
  }
}

const use = (v: unknown): PluginUse => {
  const o = v as { name: string; options: Obj };
  return { name: o.name, options: o.options };
};

/** The validated, default-filled input as typed structures (durations already in ms). */
function toConfig(data: Obj): FulcrumConfig {
  const services = (data.services as Obj[]).map((s): ServiceSpec => {
    const persistence = s.persistence as { timeout: number } | undefined;
    return {
      name: s.name as string,
      protocol: s.protocol as ServiceSpec['protocol'],
      listen: parseEndpoint(s.listen as string)!,
      scheduler: use(s.scheduler),
      ...(persistence ? { persistence: { timeoutMs: persistence.timeout } } : {}),
      ...(s.passthrough ? { passthrough: use(s.passthrough) } : {}),
      ...(s.synproxy === true ? { synproxy: true } : {}),
      healthChecks: (s.healthChecks as unknown[]).map(use),
      onFailure: s.onFailure as ServiceSpec['onFailure'],
      drain: {
        idleCloseMs: (s.drain as Obj).idleClose as number,
        deadlineMs: (s.drain as Obj).deadline as number,
      },
      ...(s.maxConnections !== undefined ? { maxConnections: s.maxConnections as number } : {}),
      quorum: s.quorum as number,
      hysteresis: s.hysteresis as number,
      ...(s.sorryServer !== undefined ? { sorryServer: parseEndpoint(s.sorryServer as string)! } : {}),
      notify: Object.fromEntries(
        Object.entries(s.notify as Obj).map(([k, v]) => [
          k,
          typeof v === 'string' ? v.trim().split(/\s+/) : v,
        ]),
      ),
      localAddresses: s.localAddresses as string[],
      realServers: (s.realServers as Obj[]).map((r) => {
        const e = parseEndpoint(r.address as string)!;
        return { address: e.address, port: e.port, weight: r.weight as number, drain: r.drain as boolean };
      }),
    };
  });
  const admin = data.admin as { listen: string; tokenFile?: string } | undefined;
  return {
    dataplane: use(data.dataplane),
    ...(admin
      ? {
          admin: {
            listen: parseEndpoint(admin.listen)!,
            ...(admin.tokenFile ? { tokenFile: admin.tokenFile } : {}),
          },
        }
      : {}),
    plugins: data.plugins as string[],
    services,
  };
}

/** What a schema cannot say: uniqueness across entries, and what the dataplane can do. */
function semanticIssues(
  config: FulcrumConfig,
  resolved: ResolvedPlugins,
  at: (segments: PathSegment[], message: string, code?: ErrorCode) => ConfigIssue,
): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const names = new Map<string, number>();
  const listens = new Map<string, number>();
  const dataplane = resolved.get('dataplane')?.get(config.dataplane.name) as
    DataplanePlugin<never> | undefined;
  const caps = new Set(dataplane?.capabilities ?? []);
  const capList = [...caps].join(', ') || 'none';
  const needs = (segments: PathSegment[], cap: string, what: string, hint = '') => {
    if (dataplane && !caps.has(cap))
      issues.push(
        at(
          segments,
          `${what} needs a dataplane with the "${cap}" capability; the "${config.dataplane.name}" dataplane has: ${capList}${hint}`,
          ErrorCodes.CAPABILITY,
        ),
      );
  };

  config.services.forEach((svc, i) => {
    const first = names.get(svc.name);
    if (first !== undefined)
      issues.push(
        at(['services', i, 'name'], `duplicate service name "${svc.name}" (also services[${first}])`),
      );
    else names.set(svc.name, i);
    const lkey = `${svc.protocol} ${svc.listen.address} ${svc.listen.port}`;
    const firstListen = listens.get(lkey);
    if (firstListen !== undefined)
      issues.push(
        at(
          ['services', i, 'listen'],
          `${svc.protocol} ${svc.listen.address}:${svc.listen.port} is already the address of services[${firstListen}]`,
        ),
      );
    else listens.set(lkey, i);

    const servers = new Map<string, number>();
    svc.realServers.forEach((rs, j) => {
      const key = `${rs.address} ${rs.port}`;
      const firstRs = servers.get(key);
      if (firstRs !== undefined)
        issues.push(
          at(
            ['services', i, 'realServers', j, 'address'],
            `duplicate real server (also realServers[${firstRs}])`,
          ),
        );
      else servers.set(key, j);
    });

    needs(['services', i, 'protocol'], svc.protocol, `protocol ${svc.protocol}`);
    if (svc.persistence) needs(['services', i, 'persistence'], 'persistence', 'persistence');
    if (svc.synproxy) {
      needs(
        ['services', i, 'synproxy'],
        'synproxy',
        'synproxy',
        ". SYN cookies answered by the balancer need a packet dataplane: use the dpdk dataplane (a socket dataplane's listeners have the host kernel's net.ipv4.tcp_syncookies)",
      );
      if (svc.protocol !== 'tcp')
        issues.push(at(['services', i, 'synproxy'], 'synproxy is for TCP services only (SYN cookies)'));
    }
    if (svc.localAddresses.length)
      needs(['services', i, 'localAddresses'], 'local-addresses', 'localAddresses');
    if (svc.passthrough) {
      const pt = resolved.get('passthrough')?.get(svc.passthrough.name) as
        PassthroughPlugin<never> | undefined;
      const missing = (pt?.requires ?? []).filter((c) => !caps.has(c));
      if (dataplane && missing.length) {
        const hint = missing.includes('toa')
          ? '. TOA rewrites TCP headers, which only a packet dataplane can do: use the dpdk dataplane, or carry the client address with the PROXY protocol (passthrough: proxy-protocol)'
          : '';
        needs(['services', i, 'passthrough'], missing[0]!, `passthrough "${svc.passthrough.name}"`, hint);
      }
    }
  });
  return issues;
}
