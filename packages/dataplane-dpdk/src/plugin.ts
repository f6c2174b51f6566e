import { defineDataplane } from '@fulcrum/kernel';
import { DpdkDataplane } from './dataplane.js';
import { optionsSchema, type DpdkDataplaneOptions } from './options.js';

/**
 * The `dpdk` dataplane: FULLNAT on DPDK ports. Capabilities are what this release does:
 * TCP and UDP FULLNAT with local addresses, and the client's address toward the servers
 * on TCP (TOA option 254, or a PROXY v1/v2 header). No persistence or SYNPROXY yet, so the
 * kernel refuses services that ask for them.
 */
export const dpdkDataplane = defineDataplane<DpdkDataplaneOptions>({
  name: 'dpdk',
  kernel: '^0.1.0',
  description: 'FULLNAT for TCP and UDP on DPDK ports, with TOA and PROXY-protocol insertion (native addon)',
  capabilities: ['tcp', 'udp', 'fullnat', 'local-addresses', 'toa', 'proxy-protocol'],
  optionsSchema,
  create: (ctx, options) => new DpdkDataplane(ctx, options),
});
