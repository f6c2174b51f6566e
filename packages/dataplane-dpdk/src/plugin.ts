import { defineDataplane } from '@fulcrum/kernel';
import { DpdkDataplane } from './dataplane.js';
import { optionsSchema, type DpdkDataplaneOptions } from './options.js';

/**
 * The `dpdk` dataplane: FULLNAT on DPDK ports. Capabilities are what this release does:
 * TCP and UDP FULLNAT with local addresses, the client's address toward the servers on
 * TCP (TOA option 254, or a PROXY v1/v2 header), and SYNPROXY for TCP services. No
 * persistence yet, so the kernel refuses services that ask for it.
 */
export const dpdkDataplane = defineDataplane<DpdkDataplaneOptions>({
  name: 'dpdk',
  kernel: '^0.1.0',
  description:
    'FULLNAT for TCP and UDP on DPDK ports, with SYNPROXY and TOA / PROXY-protocol insertion (native addon)',
  capabilities: ['tcp', 'udp', 'fullnat', 'local-addresses', 'toa', 'proxy-protocol', 'synproxy'],
  optionsSchema,
  create: (ctx, options) => new DpdkDataplane(ctx, options),
});
