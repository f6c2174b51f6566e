import { systemClock, type Clock, type HealthCheckPlugin, type HealthVerdict } from '@fulcrum/kernel';
import type { AddressInfo, Server } from 'node:net';
import { testContext, validOptions } from './conformance.js';

export interface CheckWatch {
  /** Every verdict so far, with the milliseconds since the watch started. */
  verdicts: (HealthVerdict & { at: number })[];
  /** The next verdict not yet consumed; rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<HealthVerdict>;
  stop(): void;
}

/**
 * Runs a health check against `address:port` as the kernel would (options validated, the
 * clock given, the real one by default) and collects its verdicts.
 */
export function watchCheck(
  plugin: HealthCheckPlugin<never>,
  options: Record<string, unknown>,
  address: string,
  port: number,
  clock: Clock = systemClock,
): CheckWatch {
  const create = plugin.create as (c: unknown, o: unknown) => ReturnType<HealthCheckPlugin['create']>;
  const inst = create(testContext(plugin, { clock }), validOptions(plugin, options));
  const verdicts: (HealthVerdict & { at: number })[] = [];
  const waiters: ((v: HealthVerdict) => void)[] = [];
  let consumed = 0;
  const t0 = performance.now();
  const target = {
    service: {
      name: 'web',
      protocol: 'tcp' as const,
      listen: { address: '127.0.0.1', port: 80, family: 4 as const },
    },
    server: address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`,
    address,
    port,
    weight: 1,
  };
  const watch = inst.watch(target, (v) => {
    verdicts.push({ ...v, at: performance.now() - t0 });
    const waiter = waiters.shift();
    if (waiter) {
      consumed++;
      waiter(v);
    }
  });
  const next = (timeoutMs = 3000) =>
    new Promise<HealthVerdict>((resolve, reject) => {
      if (consumed < verdicts.length) return resolve(verdicts[consumed++]!);
      const t = setTimeout(() => reject(new Error(`no verdict within ${timeoutMs}ms`)), timeoutMs);
      waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  return {
    verdicts,
    next,
    stop: () => {
      watch.stop();
      inst.close?.();
    },
  };
}

/** Listens on an ephemeral port of `host`; resolves with the port. */
export const listening = (server: Server, host = '127.0.0.1') =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });

export const closed = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
