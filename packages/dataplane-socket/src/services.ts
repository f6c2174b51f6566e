import type { ServiceSnapshot } from '@fulcrum/kernel';
import type { HeaderEncoder } from './proxy-header.js';
import type { Runtime } from './runtime.js';
import { TcpService } from './tcp-service.js';
import { UdpService } from './udp-service.js';
import type { VirtualService } from './virtual-service.js';

export type { Listener } from './virtual-service.js';

/** A service object for a snapshot; pure (no socket until open()). */
export function createService(
  rt: Runtime,
  snapshot: ServiceSnapshot,
  encoder: HeaderEncoder | undefined,
): VirtualService {
  return snapshot.protocol === 'udp'
    ? new UdpService(rt, snapshot, encoder)
    : new TcpService(rt, snapshot, encoder);
}
