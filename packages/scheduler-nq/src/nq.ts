import { defineScheduler, type LeastConnectionsPlan, type RealServerView } from '@fulcrum/kernel';

/**
 * Never queue: the first server with no active connection; when every server is busy, the
 * server with the least (active + 1) / weight, as sed.
 * The plan carries each server's effective weight; the dataplane holds the live
 * connection counts and evaluates the formula on every new connection (ip_vs_nq.c).
 */
export function nqPlan(servers: readonly Pick<RealServerView, 'weight'>[]): LeastConnectionsPlan {
  return {
    kind: 'least-connections',
    formula: 'nq',
    weights: servers.map((s) => Math.max(0, Math.floor(s.weight))),
  };
}

export const nq = defineScheduler<Record<string, never>>({
  name: 'nq',
  kernel: '^0.1.0',
  description: 'never queue (IPVS nq): an idle server first, else shortest expected delay',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (view) => nqPlan(view.realServers) }),
});
