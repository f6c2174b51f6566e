import { defineScheduler, type LeastConnectionsPlan, type RealServerView } from '@fulcrum/kernel';

/**
 * Shortest expected delay: the server with the least (active + 1) / weight, compared by
 * cross-multiplication, the first in order on ties, never a weight-0 server.
 * The plan carries each server's effective weight; the dataplane holds the live
 * connection counts and evaluates the formula on every new connection (ip_vs_sed.c).
 */
export function sedPlan(servers: readonly Pick<RealServerView, 'weight'>[]): LeastConnectionsPlan {
  return {
    kind: 'least-connections',
    formula: 'sed',
    weights: servers.map((s) => Math.max(0, Math.floor(s.weight))),
  };
}

export const sed = defineScheduler<Record<string, never>>({
  name: 'sed',
  kernel: '^0.1.0',
  description: 'shortest expected delay (IPVS sed): least (active + 1) / weight',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (view) => sedPlan(view.realServers) }),
});
