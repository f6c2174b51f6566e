import { defineHealthCheck, durationSchema, formatDuration, type HealthVerdict } from '@fulcrum/kernel';
import { DestCheck, type DestCheckTransition } from './dest-check.js';

export interface PassiveOptions {
  downNoticeNum: number;
  downWait: number;
  upNoticeNum: number;
  inhibitMin: number;
  inhibitMax: number;
  jitter: number;
}

/** The verdict the aggregator sees: only DOWN takes the server out (weight 0, inhibited). */
export function verdictOf(t: DestCheckTransition): HealthVerdict {
  const label = t.to.toUpperCase();
  const inhibit = t.inhibitMs !== undefined ? `; inhibited for ${formatDuration(t.inhibitMs)}` : '';
  return { up: t.to !== 'down', reason: `${label}: ${t.reason}${inhibit}` };
}

/**
 * DPVS's passive dest-check: no probes, only the dataplane's `health:signal` events
 * (SYN_SENT/SYN_RECV → CLOSE, SYN timeouts, SYNPROXY step-3 RST, UDP ONEWAY expiry, and
 * answers). Defaults are DPVS's (`dest-check default`).
 */
export const passive = defineHealthCheck<PassiveOptions>({
  name: 'passive',
  kernel: '^0.1.0',
  description: "DPVS's passive dest-check fed by the dataplane's connection outcomes",
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      downNoticeNum: { type: 'integer', minimum: 1, maximum: 65535, default: 1 },
      downWait: durationSchema({ default: '3s', min: '10ms', max: '1h' }),
      upNoticeNum: { type: 'integer', minimum: 1, maximum: 65535, default: 1 },
      inhibitMin: durationSchema({ default: '5s', min: '10ms', max: '1d' }),
      inhibitMax: durationSchema({ default: '3600s', min: '10ms', max: '1d' }),
      jitter: durationSchema({ default: 0, max: '1h' }),
    },
  },
  create(ctx, options) {
    const config = {
      downNoticeNum: options.downNoticeNum,
      downWaitMs: options.downWait,
      upNoticeNum: options.upNoticeNum,
      inhibitMinMs: options.inhibitMin,
      // an inverted range would make the cap smaller than the floor; the floor wins, as in DPVS
      inhibitMaxMs: Math.max(options.inhibitMin, options.inhibitMax),
      jitterMs: options.jitter,
    };
    // One bus listener per instance, and a lookup per signal: dataplanes signal every
    // connection outcome, so a listener per server would cost O(servers) per connection.
    const checks = new Map<string, Set<DestCheck>>();
    const keyOf = (service: string, server: string) => `${service}\u0000${server}`;
    const onSignal = (s: { service: string; server: string; ok: boolean; reason: string }) => {
      const found = checks.get(keyOf(s.service, s.server));
      if (!found) return;
      for (const check of found) {
        if (s.ok) check.success(s.reason);
        else check.failure(s.reason);
      }
    };
    return {
      watch(target, report) {
        const log = ctx.logger.child({ service: target.service.name, server: target.server });
        const labels = { service: target.service.name, server: target.server };
        const inhibited = ctx.metrics.gauge({
          name: 'fulcrum_server_inhibited',
          help: '1 while the passive check (DPVS dest-check) keeps the real server inhibited',
          labelNames: ['service', 'server'] as const,
        });
        const transitions = ctx.metrics.counter({
          name: 'fulcrum_passive_transitions_total',
          help: 'Passive-check state changes by the state entered',
          labelNames: ['service', 'state'] as const,
        });
        inhibited.set(labels, 0);
        const check = new DestCheck(config, ctx.clock, (t) => {
          log.info(
            { from: t.from, to: t.to, inhibitMs: t.inhibitMs },
            `passive: ${t.from} -> ${t.to}: ${t.reason}`,
          );
          inhibited.set(labels, t.to === 'down' ? 1 : 0);
          transitions.inc({ service: target.service.name, state: t.to });
          report(verdictOf(t));
        });
        const key = keyOf(target.service.name, target.server);
        if (checks.size === 0) ctx.events.on('health:signal', onSignal);
        const set = checks.get(key) ?? new Set<DestCheck>();
        set.add(check);
        checks.set(key, set);
        let stopped = false;
        return {
          stop() {
            if (stopped) return;
            stopped = true;
            check.stop();
            inhibited.remove(labels);
            set.delete(check);
            if (set.size === 0) checks.delete(key);
            if (checks.size === 0) ctx.events.off('health:signal', onSignal);
          },
        };
      },
    };
  },
});
