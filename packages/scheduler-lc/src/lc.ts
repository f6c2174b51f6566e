import { defineScheduler, type LeastConnectionsPlan, type RealServerView } from '@fulcrum/kernel';

/**
 * Least-connection: the server with the least overhead = active × 256 + inactive; weights
 * only decide whether a server may be chosen at all (weight 0 never is).
 * The plan carries each server's effective weight; the dataplane holds the live
 * connection counts and evaluates the formula on every new connection (ip_vs_lc.c).
 */
export function lcPlan(servers: readonly Pick<RealServerView, 'weight'>[]): LeastConnectionsPlan {
  return {
    kind: 'least-connections',
    formula: 'lc',
    weights: servers.map((s) => Math.max(0, Math.floor(s.weight))),
  };
}

export const lc = defineScheduler<Record<string, never>>({
  name: 'lc',
  kernel: '^0.1.0',
  description: 'least-connection (IPVS lc): least active × 256 + inactive; weight-0 servers never chosen',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (view) => lcPlan(view.realServers) }),
});
