import type { ConnectionEntry } from '@fulcrum/kernel';
import type { NativeConnection } from './native.js';

/** A native connection row as the kernel lists it (`fulcrum adm -Lnc`, the admin API). */
export function toConnectionEntry(c: NativeConnection): ConnectionEntry {
  return {
    protocol: c.protocol === 'tcp' ? 'TCP' : 'UDP',
    state: c.state,
    expiresInMs: c.expiresInMs,
    client: c.client,
    virtual: c.virtual,
    server: c.server,
    service: c.service,
    local: c.local,
  };
}
