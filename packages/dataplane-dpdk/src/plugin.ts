import { defineDataplane } from '@fulcrum/kernel';
import { DpdkDataplane } from './dataplane.js';
import { optionsSchema, type DpdkDataplaneOptions } from './options.js';

/**
 * The `dpdk` dataplane: FULLNAT on DPDK ports. Capabilities are what this release does:
 * TCP and UDP FULLNAT with local addresses. No persistence, SYNPROXY, TOA or PROXY
 * protocol yet, so the kernel refuses services that ask for them.
 */
export const dpdkDataplane = defineDataplane<DpdkDataplaneOptions>({
  name: 'dpdk',
  kernel: '^0.1.0',
  description: 'FULLNAT for TCP and UDP on DPDK ports (native addon)',
  capabilities: ['tcp', 'udp', 'fullnat', 'local-addresses'],
  optionsSchema,
  create: (ctx, options) => new DpdkDataplane(ctx, options),
});
