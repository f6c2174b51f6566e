export { socketDataplane, socketDataplane as default } from './plugin.js';
export { SocketDataplane, type RelayInfo } from './dataplane.js';
export { nativeRelayUnavailable } from './native-relay.js';
export type { SocketDataplaneOptions } from './options.js';
export type { ConnState, TcpState, UdpState } from './conn.js';

import type { DataplaneInstance } from '@fulcrum/kernel';
import { SocketDataplane } from './dataplane.js';

/** Narrows `kernel.dataplane` to the socket dataplane, for its connection listing and counts. */
export function isSocketDataplane(dataplane: DataplaneInstance | undefined): dataplane is SocketDataplane {
  return dataplane instanceof SocketDataplane;
}
