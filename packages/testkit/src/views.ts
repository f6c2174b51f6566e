import type { RealServerView, ServiceView } from '@fulcrum/kernel';

export interface ServerInput {
  /** Effective weight, as the scheduler sees it. */
  weight: number;
  /** `address:port` by default. */
  key?: string;
  /** Configured weight; defaults to `weight` (differs when a check inhibits or re-weights). */
  configuredWeight?: number;
  address?: string;
  port?: number;
  health?: 'up' | 'down';
  draining?: boolean;
}

/**
 * A frozen ServiceView as the kernel would hand it to a scheduler; give weights, or full
 * server descriptions. `makeView([4, 3, 2])`.
 */
export function makeView(servers: readonly (number | ServerInput)[], name = 'svc'): ServiceView {
  const realServers = servers.map((s, index): RealServerView => {
    const input: ServerInput = typeof s === 'number' ? { weight: s } : s;
    const address = input.address ?? `10.0.${(index >> 8) & 255}.${index & 255}`;
    const port = input.port ?? 80;
    return Object.freeze({
      index,
      key: input.key ?? (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`),
      address,
      port,
      weight: input.weight,
      configuredWeight: input.configuredWeight ?? input.weight,
      health: input.health ?? 'up',
      draining: input.draining ?? false,
    });
  });
  return Object.freeze({
    name,
    protocol: 'tcp' as const,
    listen: Object.freeze({ address: '198.51.100.1', port: 80, family: 4 as const }),
    realServers: Object.freeze(realServers),
  });
}
