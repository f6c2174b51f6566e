import { systemClock, type HealthCheckPlugin, type HealthVerdict } from '@fulcrum/kernel';
import { testContext, validOptions } from '@fulcrum/testkit';
import type { AddressInfo, Server } from 'node:net';

/** Starts a checker on the real clock against `address:port`; `next()` waits for the next verdict. */
export function watchReal(
  plugin: HealthCheckPlugin<never>,
  options: Record<string, unknown>,
  address: string,
  port: number,
) {
  const create = plugin.create as (c: unknown, o: unknown) => ReturnType<HealthCheckPlugin['create']>;
  const inst = create(testContext(plugin, { clock: systemClock }), validOptions(plugin, options));
  const verdicts: (HealthVerdict & { at: number })[] = [];
  const waiters: ((v: HealthVerdict) => void)[] = [];
  let consumed = 0;
  const t0 = performance.now();
  const watch = inst.watch(
    {
      service: { name: 'web', protocol: 'tcp', listen: { address: '127.0.0.1', port: 80, family: 4 } },
      server: `${address}:${port}`,
      address,
      port,
      weight: 1,
    },
    (v) => {
      verdicts.push({ ...v, at: performance.now() - t0 });
      const waiter = waiters.shift();
      if (waiter) {
        consumed++;
        waiter(v);
      }
    },
  );
  const next = (timeoutMs = 3000) =>
    new Promise<HealthVerdict>((resolve, reject) => {
      if (consumed < verdicts.length) return resolve(verdicts[consumed++]!);
      const t = setTimeout(() => reject(new Error(`no verdict within ${timeoutMs}ms`)), timeoutMs);
      waiters.push((v) => {
        clearTimeout(t);
        resolve(v);
      });
    });
  const stop = () => {
    watch.stop();
    inst.close?.();
  };
  return { verdicts, next, stop };
}

export const listening = (server: Server, host = '127.0.0.1') =>
  new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });

export const closed = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));
