import type { HealthVerdict } from './plugin.js';
import type { ServerHealth } from './service.js';

export interface AggregateHealth {
  health: ServerHealth;
  weight: number;
  reason: string;
}

/**
 * One server's effective state from every checker's last verdict: down (weight 0) when any
 * checker says down; otherwise up, with a dynamic weight when a checker set one (keepalived
 * misc_dynamic), else the configured weight. No verdict yet counts as up, as keepalived
 * does without `alpha`.
 */
export function aggregateHealth(
  configuredWeight: number,
  verdicts: Iterable<[string, HealthVerdict]>,
): AggregateHealth {
  let weight = configuredWeight;
  let reason = 'no check has reported';
  for (const [checker, v] of verdicts) {
    if (!v.up) return { health: 'down', weight: 0, reason: `${checker}: ${v.reason}` };
    reason = `${checker}: ${v.reason}`;
    if (v.weight !== undefined) weight = v.weight;
  }
  return { health: 'up', weight, reason };
}
