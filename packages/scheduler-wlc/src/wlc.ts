import { defineScheduler, type LeastConnectionsPlan, type RealServerView } from '@fulcrum/kernel';

/**
 * Weighted least-connection: the server with the least (active × 256 + inactive) / weight,
 * compared by cross-multiplication, the first in order on ties, never a weight-0 server.
 * The plan carries each server's effective weight; the dataplane holds the live
 * connection counts and evaluates the formula on every new connection (ip_vs_wlc.c).
 */
export function wlcPlan(servers: readonly Pick<RealServerView, 'weight'>[]): LeastConnectionsPlan {
  return {
    kind: 'least-connections',
    formula: 'wlc',
    weights: servers.map((s) => Math.max(0, Math.floor(s.weight))),
  };
}

export const wlc = defineScheduler<Record<string, never>>({
  name: 'wlc',
  kernel: '^0.1.0',
  description: 'weighted least-connection (IPVS wlc): least (active × 256 + inactive) / weight',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (view) => wlcPlan(view.realServers) }),
});
