import { defineScheduler, type RealServerView, type SequencePlan } from '@fulcrum/kernel';

/**
 * IPVS's round robin (ip_vs_rr.c): the servers with weight > 0, in the service's order.
 * Weight-0 servers (inhibited, draining or quiesced) are skipped, as IPVS skips them.
 */
export function roundRobinSequence(servers: readonly Pick<RealServerView, 'weight'>[]): number[] {
  const sequence: number[] = [];
  for (let i = 0; i < servers.length; i++) if (servers[i]!.weight > 0) sequence.push(i);
  return sequence;
}

export const rr = defineScheduler<Record<string, never>>({
  name: 'rr',
  kernel: '^0.1.0',
  description: 'round robin over the servers with weight > 0 (IPVS rr)',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (view): SequencePlan => ({ kind: 'sequence', sequence: roundRobinSequence(view.realServers) }),
  }),
});
