import { defineScheduler, type ServiceView } from '@fulcrum/kernel';

export interface SwrrOptions {
  /** Longest sequence to compile; weights are scaled down to fit (keeps recompiles cheap). */
  maxSequence: number;
}

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * nginx's smooth weighted round-robin (ngx_http_upstream_get_peer): every pick adds each
 * server's weight to its current weight, takes the largest, and subtracts the total from
 * it. For weights a=5, b=1, c=1 one cycle is a a b a c a a — spread out, where IPVS's wrr
 * gives a a a a a b c. One cycle has sum(weights / gcd) picks.
 */
export function smoothSequence(view: ServiceView, maxSequence = 65_536): number[] {
  const live = view.realServers.filter((r) => r.weight > 0);
  if (live.length === 0) return [];
  const divisor = live.reduce((g, r) => gcd(g, r.weight), 0);
  let weights = live.map((r) => r.weight / divisor);
  let total = weights.reduce((a, b) => a + b, 0);
  if (total > maxSequence) {
    // Scale down, keeping every live server at least once per cycle.
    const scale = maxSequence / total;
    weights = weights.map((w) => Math.max(1, Math.floor(w * scale)));
    total = weights.reduce((a, b) => a + b, 0);
  }
  const current = new Array<number>(live.length).fill(0);
  const sequence: number[] = [];
  for (let pick = 0; pick < total; pick++) {
    let best = 0;
    for (let i = 0; i < live.length; i++) {
      current[i]! += weights[i]!;
      if (current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    sequence.push(live[best]!.index);
  }
  return sequence;
}

export const swrr = defineScheduler<SwrrOptions>({
  name: 'swrr',
  kernel: '^0.1.0',
  description: "nginx's smooth weighted round-robin",
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: { maxSequence: { type: 'integer', minimum: 1, maximum: 4_194_304, default: 65_536 } },
  },
  create: (_ctx, options) => ({
    compile: (view) => ({ kind: 'sequence', sequence: smoothSequence(view, options.maxSequence) }),
  }),
});
