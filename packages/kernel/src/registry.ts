import { isBuiltin } from 'node:module';
import { resolve as resolveModule } from 'import-meta-resolve';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import semver from 'semver';
import { ErrorCodes, FulcrumError } from './errors.js';
import { PLUGIN_KINDS, type AnyPlugin, type PluginKind } from './plugin.js';
import { compileOptionsSchema } from './validation.js';

const NAME_RE = /^[a-z0-9][a-z0-9-]*$/;

/** Conventional packages tried for a short name, in order (Babel-style name resolution). */
export function conventionalPackages(kind: PluginKind, name: string): string[] {
  switch (kind) {
    case 'scheduler':
      return [`@fulcrum/scheduler-${name}`];
    case 'healthcheck':
      return [`@fulcrum/healthcheck-${name}`];
    case 'dataplane':
      return [`@fulcrum/dataplane-${name}`];
    case 'passthrough':
      return [`@fulcrum/${name}`, `@fulcrum/passthrough-${name}`];
  }
}

/** A name that can only be a package: scoped, a path inside a package, or a relative/absolute path. */
export function isPackageSpecifier(name: string): boolean {
  return name.startsWith('@') || name.includes('/') || name.startsWith('.');
}

function looksLikePlugin(v: unknown): v is AnyPlugin {
  return typeof v === 'object' && v !== null && 'kind' in v && 'create' in v && 'name' in v;
}

/**
 * Holds the plugins a kernel knows, by kind and name, and loads more from npm packages.
 * Every plugin is checked once, when it is registered: its shape, its `kernel` range
 * against this kernel's version, and that its options schema compiles.
 */
export class PluginRegistry {
  readonly kernelVersion: string;
  /** Directories package names resolve from, in order; the kernel's own location is tried last. */
  readonly resolveFrom: readonly string[];
  #plugins = new Map<PluginKind, Map<string, AnyPlugin>>(PLUGIN_KINDS.map((k) => [k, new Map()]));
  #packages = new Map<string, AnyPlugin[]>();

  #fallbacks: readonly AnyPlugin[];

  /**
   * `fallbacks` are plugins used when a name resolves to nothing registered or installed: a
   * program that bundles its plugins (the single-binary daemon) resolves names without a
   * node_modules, while an installed package of the same name still takes precedence.
   */
  constructor(
    kernelVersion: string,
    resolveFrom: string | readonly string[] = process.cwd(),
    fallbacks: readonly AnyPlugin[] = [],
  ) {
    this.kernelVersion = kernelVersion;
    this.resolveFrom = [resolveFrom].flat();
    this.#fallbacks = fallbacks;
  }

  register(plugin: unknown, source = 'kernel.use()'): AnyPlugin {
    const p = checkPluginShape(plugin, source);
    const range = semver.validRange(p.kernel);
    if (!range) {
      throw new FulcrumError(
        ErrorCodes.PLUGIN_INVALID,
        `${p.kind} plugin "${p.name}" (${source}) declares kernel range "${p.kernel}", which is not a semver range`,
        { details: { plugin: p.name } },
      );
    }
    if (!semver.satisfies(this.kernelVersion, range, { includePrerelease: true })) {
      throw new FulcrumError(
        ErrorCodes.KERNEL_VERSION,
        `${p.kind} plugin "${p.name}" (${source}) supports @fulcrum/kernel ${p.kernel}, but this is ${this.kernelVersion}: install a version of the plugin made for this kernel`,
        { details: { plugin: p.name, range: p.kernel, kernel: this.kernelVersion } },
      );
    }
    try {
      compileOptionsSchema(p.optionsSchema);
    } catch (e) {
      throw new FulcrumError(
        ErrorCodes.PLUGIN_INVALID,
        `${p.kind} plugin "${p.name}" (${source}) has an invalid optionsSchema: ${(e as Error).message}`,
        { cause: e, details: { plugin: p.name } },
      );
    }
    const byName = this.#plugins.get(p.kind)!;
    const existing = byName.get(p.name);
    if (existing && existing !== p) {
      throw new FulcrumError(
        ErrorCodes.PLUGIN_DUPLICATE,
        `a ${p.kind} plugin named "${p.name}" is already registered; plugin names are unique per kind`,
        { details: { plugin: p.name, kind: p.kind } },
      );
    }
    byName.set(p.name, p);
    return p;
  }

  get(kind: PluginKind, name: string): AnyPlugin | undefined {
    return this.#plugins.get(kind)!.get(name);
  }

  list(kind?: PluginKind): AnyPlugin[] {
    const kinds = kind ? [kind] : PLUGIN_KINDS;
    return kinds.flatMap((k) => [...this.#plugins.get(k)!.values()]);
  }

  /**
   * Imports a package and registers every plugin it exports (its default export: a plugin
   * or an array of plugins; and any named export that is a plugin). Returns them, or
   * undefined when the package is not installed.
   */
  async loadPackage(specifier: string): Promise<AnyPlugin[] | undefined> {
    const cached = this.#packages.get(specifier);
    if (cached) return cached;
    const url = resolvePackage(specifier, this.resolveFrom);
    if (!url) return undefined;
    let mod: Record<string, unknown>;
    try {
      mod = (await import(url)) as Record<string, unknown>;
    } catch (e) {
      throw new FulcrumError(
        ErrorCodes.PLUGIN_INVALID,
        `package "${specifier}" failed to load: ${(e as Error).message}`,
        { cause: e, details: { package: specifier } },
      );
    }
    const found = new Set<AnyPlugin>();
    const collect = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(collect);
      else if (looksLikePlugin(v)) found.add(v);
    };
    collect(mod.default);
    for (const [k, v] of Object.entries(mod)) if (k !== 'default') collect(v);
    if (found.size === 0) {
      throw new FulcrumError(
        ErrorCodes.PLUGIN_INVALID,
        `package "${specifier}" exports no Fulcrum plugin (export one made with defineScheduler, defineHealthCheck, definePassthrough or defineDataplane)`,
        { details: { package: specifier } },
      );
    }
    const plugins = [...found].map((p) => this.register(p, specifier));
    this.#packages.set(specifier, plugins);
    return plugins;
  }

  /**
   * Finds the plugin a config names: a registered plugin of that kind and name; else a
   * package named so (`@acme/fulcrum-scheduler-x`), or the conventional package for a short
   * name (`wrr` → `@fulcrum/scheduler-wrr`). Throws FULCRUM_PLUGIN_NOT_FOUND or _KIND.
   */
  async resolve(kind: PluginKind, name: string): Promise<AnyPlugin> {
    const known = this.get(kind, name);
    if (known) return known;
    // A short name tries the conventional packages, then a package of that very name — never
    // one of Node's own modules (`http` is a health check, not node:http).
    const candidates = isPackageSpecifier(name)
      ? [name]
      : [...conventionalPackages(kind, name), ...(isBuiltin(name) ? [] : [name])];
    for (const pkg of candidates) {
      const plugins = await this.loadPackage(pkg);
      if (!plugins) continue;
      const ofKind = plugins.filter((p) => p.kind === kind);
      const exact = ofKind.find((p) => p.name === name);
      if (exact) return exact;
      if (ofKind.length === 1) return ofKind[0]!;
      if (ofKind.length > 1) {
        throw new FulcrumError(
          ErrorCodes.PLUGIN_NOT_FOUND,
          `package "${pkg}" exports several ${kind} plugins (${ofKind.map((p) => p.name).join(', ')}): name one of them`,
          { details: { kind, name } },
        );
      }
      throw new FulcrumError(
        ErrorCodes.PLUGIN_KIND,
        `package "${pkg}" has no ${kind} plugin (it exports: ${plugins.map((p) => `${p.kind} "${p.name}"`).join(', ')})`,
        { details: { kind, name } },
      );
    }
    const fallback = this.#fallbacks.find(
      (p) => p.kind === kind && (p.name === name || conventionalPackages(kind, p.name).includes(name)),
    );
    if (fallback) return this.register(fallback, 'built-in');
    const registered = [...this.#plugins.get(kind)!.keys()];
    throw new FulcrumError(
      ErrorCodes.PLUGIN_NOT_FOUND,
      `no ${kind} plugin "${name}": ${registered.length ? `registered ${kind}s are ${registered.join(', ')}, and ` : ''}${candidates.map((c) => `"${c}"`).join(' and ')} ${candidates.length > 1 ? 'are' : 'is'} not installed (npm install ${candidates[0]})`,
      { details: { kind, name, tried: candidates } },
    );
  }
}

/**
 * Resolves a package as Node's ESM loader would from `base` (the config's or the app's
 * directory), honouring "import"-only exports maps; undefined when it is not installed.
 */
function resolvePackage(specifier: string, bases: readonly string[]): string | undefined {
  const parents = [...bases.map((b) => pathToFileURL(join(b, 'fulcrum-resolve.js')).href), import.meta.url];
  for (const parent of parents) {
    try {
      return resolveModule(specifier, parent);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') continue;
      throw new FulcrumError(
        ErrorCodes.PLUGIN_INVALID,
        `cannot resolve package "${specifier}": ${(e as Error).message}`,
        { cause: e },
      );
    }
  }
  return undefined;
}

function checkPluginShape(plugin: unknown, source: string): AnyPlugin {
  const problems: string[] = [];
  const p = (typeof plugin === 'object' && plugin !== null ? plugin : {}) as Record<string, unknown>;
  if (!PLUGIN_KINDS.includes(p.kind as PluginKind))
    problems.push(`kind must be one of ${PLUGIN_KINDS.join(', ')} (use defineScheduler() and friends)`);
  if (typeof p.name !== 'string' || !NAME_RE.test(p.name))
    problems.push('name must be kebab-case, e.g. "wrr" or "my-check"');
  if (typeof p.kernel !== 'string')
    problems.push('kernel must be a semver range of @fulcrum/kernel, e.g. "^1.0.0"');
  if (typeof p.optionsSchema !== 'object' || p.optionsSchema === null)
    problems.push('optionsSchema must be a JSON Schema object');
  if (typeof p.create !== 'function') problems.push('create must be a function (ctx, options) => instance');
  if (p.kind === 'dataplane' && !Array.isArray(p.capabilities))
    problems.push('a dataplane must declare capabilities: string[]');
  if (p.kind === 'passthrough' && !Array.isArray(p.requires))
    problems.push('a passthrough must declare requires: string[]');
  if (problems.length) {
    const label = typeof p.name === 'string' ? `"${p.name}"` : '';
    throw new FulcrumError(
      ErrorCodes.PLUGIN_INVALID,
      `invalid plugin ${label} (${source}): ${problems.join('; ')}`,
      { details: { problems } },
    );
  }
  return plugin as AnyPlugin;
}
