import { ConfigError, createKernel, ErrorCodes, type ConfigInput } from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import mh from '../index.js';

const servers = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'];
const config = (options: Record<string, unknown>, drained?: string): ConfigInput => ({
  dataplane: 'memory',
  services: [
    {
      name: 'web',
      listen: '192.0.2.1:80',
      scheduler: { name: 'mh', options },
      realServers: servers.map((address) => ({ address, ...(address === drained ? { drain: true } : {}) })),
    },
  ],
});
const clients = Array.from({ length: 400 }, (_, i) => `198.51.${i >> 8}.${i & 255}`);

describe('mh through the kernel', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => close?.());

  function setup() {
    const memory = createMemoryDataplane();
    const kernel = createKernel({ plugins: [mh, memory.plugin] });
    close = () => kernel.close();
    const route = () => clients.map((c) => memory.connect('web', c)?.server);
    return { kernel, route };
  }

  it('refuses a table size that is not a prime, naming the option', async () => {
    const { kernel } = setup();
    const error = await kernel.apply(config({ tableSize: 65536 })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => i.path)).toContain(
      'services[0].scheduler.options.tableSize',
    );
  });

  it('refuses more servers than slots, and keeps serving the plan it had', async () => {
    const { kernel, route } = setup();
    await kernel.apply(config({ tableSize: 11 }));
    const before = route();
    const more = config({ tableSize: 11 });
    more.services![0]!.realServers = Array.from({ length: 12 }, (_, i) => ({ address: `10.0.1.${i}:80` }));
    const error = await kernel.apply(more).catch((e: unknown) => e);
    expect((error as { code?: string }).code).toBe(ErrorCodes.PLUGIN_FAILED);
    expect(route()).toEqual(before);
  });

  it('moves only the clients of a drained server, to the others', async () => {
    const { kernel, route } = setup();
    await kernel.apply(config({}));
    const before = route();
    await kernel.apply(config({}, '10.0.0.2:80'));
    const after = route();
    const moved = clients.filter((_, i) => before[i] !== after[i]);
    expect(after).not.toContain('10.0.0.2:80');
    expect(moved.length).toBe(before.filter((s) => s === '10.0.0.2:80').length);
    expect(moved.length).toBeGreaterThan(0);
  });
});
