import {
  defineHealthCheck,
  type HealthCheckPlugin,
  type JsonSchema,
  type PluginContext,
} from '@fulcrum/kernel';
import { activeOptionsProperties, type ActiveOptions } from './options.js';
import { ActiveWatch, type Probe } from './runner.js';

export interface ActiveCheckDefinition<O extends ActiveOptions> {
  name: string;
  kernel: string;
  description?: string;
  /** The checker's own option properties; the common ones are added (and may be re-defaulted here). */
  properties?: Record<string, JsonSchema>;
  required?: string[];
  /** Builds the probe once per plugin instance: synchronous, no sockets or timers. */
  probe(ctx: PluginContext, options: O): Probe;
}

/**
 * Declares an active health check from a probe: the runner brings keepalived's
 * interval/timeout/retry/alpha and HAProxy's rise/fall, so a checker is only its probe.
 */
export function defineActiveCheck<O extends ActiveOptions>(
  def: ActiveCheckDefinition<O>,
): HealthCheckPlugin<O> {
  return defineHealthCheck<O>({
    name: def.name,
    kernel: def.kernel,
    ...(def.description ? { description: def.description } : {}),
    optionsSchema: {
      type: 'object',
      additionalProperties: false,
      properties: { ...activeOptionsProperties, ...def.properties },
      ...(def.required?.length ? { required: def.required } : {}),
    },
    create(ctx, options) {
      const probe = def.probe(ctx, options);
      const watches = new Set<ActiveWatch>();
      return {
        watch(target, report) {
          const w: ActiveWatch = new ActiveWatch(ctx, options, probe, target, report, () =>
            watches.delete(w),
          );
          watches.add(w);
          return w.start();
        },
        close() {
          for (const w of [...watches]) w.stop();
        },
      };
    },
  });
}
