import { defineDataplane } from '@fulcrum/kernel';
import { SocketDataplane } from './dataplane.js';
import { optionsSchema, type SocketDataplaneOptions } from './options.js';

/**
 * The `socket` dataplane: a full TCP/UDP proxy on the host's sockets, no root needed.
 * TOA is not among its capabilities (a proxy cannot write TCP options of the client's
 * connection), so the kernel refuses a service that asks for it here and says to use
 * the PROXY protocol or the dpdk dataplane.
 */
export const socketDataplane = defineDataplane<SocketDataplaneOptions>({
  name: 'socket',
  kernel: '^0.1.0',
  description: 'TCP/UDP proxy on the host sockets (FULLNAT semantics), the embedded default',
  capabilities: ['tcp', 'udp', 'fullnat', 'local-addresses', 'persistence', 'proxy-protocol'],
  optionsSchema,
  create: (ctx, options) => new SocketDataplane(ctx, options),
});
