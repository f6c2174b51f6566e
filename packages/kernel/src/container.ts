// tsyringe needs the Reflect metadata API at import time; Fulcrum never uses decorators,
// but the polyfill must be loaded before tsyringe itself (docs/decisions/0002).
import 'reflect-metadata';
import {
  container as rootContainer,
  instanceCachingFactory,
  type DependencyContainer,
  type InjectionToken,
} from 'tsyringe';
import { systemClock, type Clock } from './clock.js';
import { EventBus } from './events.js';
import { Kernel } from './kernel.js';
import { silentLogger, type Logger } from './logger.js';
import { MetricsRegistry } from './metrics.js';
import type { AnyPlugin } from './plugin.js';
import { PluginRegistry } from './registry.js';
import { KERNEL_VERSION } from './version.js';

/** Injection tokens of the kernel's container: explicit, no emitted decorator metadata. */
export const Tokens = {
  KernelVersion: Symbol('fulcrum.KernelVersion') as InjectionToken<string>,
  ResolveFrom: Symbol('fulcrum.ResolveFrom') as InjectionToken<readonly string[]>,
  FallbackPlugins: Symbol('fulcrum.FallbackPlugins') as InjectionToken<readonly AnyPlugin[]>,
  Clock: Symbol('fulcrum.Clock') as InjectionToken<Clock>,
  Logger: Symbol('fulcrum.Logger') as InjectionToken<Logger>,
  Events: Symbol('fulcrum.Events') as InjectionToken<EventBus>,
  Metrics: Symbol('fulcrum.Metrics') as InjectionToken<MetricsRegistry>,
  Registry: Symbol('fulcrum.Registry') as InjectionToken<PluginRegistry>,
  Kernel: Symbol('fulcrum.Kernel') as InjectionToken<Kernel>,
} as const;

export interface KernelOptions {
  /** Plugins to register up front (same as kernel.use()). */
  plugins?: readonly AnyPlugin[];
  clock?: Clock;
  logger?: Logger;
  metrics?: MetricsRegistry;
  /**
   * Directories that package names in a config resolve from, in order (the daemon passes
   * the config file's directory, then the working directory); default: process.cwd().
   * Packages installed beside @fulcrum/kernel itself are always found last.
   */
  resolveFrom?: string | readonly string[];
  /**
   * Plugins used when a config names one that is neither registered nor installed (what a
   * bundled program ships); installed packages take precedence.
   */
  fallbackPlugins?: readonly AnyPlugin[];
}

/**
 * The composition root: a child container per kernel, so several kernels can live in one
 * process (tests do this) without sharing state. Embedders that compose more services
 * (the daemon) build on this container; plugins never see it.
 */
export function createKernelContainer(options: KernelOptions = {}): DependencyContainer {
  const c = rootContainer.createChildContainer();
  c.register(Tokens.KernelVersion, { useValue: KERNEL_VERSION });
  c.register(Tokens.ResolveFrom, { useValue: [options.resolveFrom ?? process.cwd()].flat() });
  c.register(Tokens.FallbackPlugins, { useValue: options.fallbackPlugins ?? [] });
  c.register(Tokens.Clock, { useValue: options.clock ?? systemClock });
  c.register(Tokens.Logger, { useValue: options.logger ?? silentLogger });
  c.register(Tokens.Events, { useFactory: instanceCachingFactory(() => new EventBus()) });
  c.register(Tokens.Metrics, {
    useFactory: instanceCachingFactory(() => options.metrics ?? new MetricsRegistry()),
  });
  c.register(Tokens.Registry, {
    useFactory: instanceCachingFactory(
      (d) =>
        new PluginRegistry(
          d.resolve(Tokens.KernelVersion),
          d.resolve(Tokens.ResolveFrom),
          d.resolve(Tokens.FallbackPlugins),
        ),
    ),
  });
  c.register(Tokens.Kernel, {
    useFactory: instanceCachingFactory(
      (d) =>
        new Kernel({
          version: d.resolve(Tokens.KernelVersion),
          registry: d.resolve(Tokens.Registry),
          events: d.resolve(Tokens.Events),
          metrics: d.resolve(Tokens.Metrics),
          clock: d.resolve(Tokens.Clock),
          logger: d.resolve(Tokens.Logger),
        }),
    ),
  });
  return c;
}

/** Creates a kernel with its own container and registers the given plugins. */
export function createKernel(options: KernelOptions = {}): Kernel {
  const kernel = createKernelContainer(options).resolve(Tokens.Kernel);
  for (const p of options.plugins ?? []) kernel.use(p);
  return kernel;
}
