import { createKernel, type ConfigInput } from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import sh from '../index.js';

const servers = ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'];
const config = (realServers: { address: string; drain?: boolean }[]): ConfigInput => ({
  dataplane: 'memory',
  services: [{ name: 'web', listen: '192.0.2.1:80', scheduler: 'sh', realServers }],
});
const clients = Array.from({ length: 400 }, (_, i) => `198.51.${i >> 8}.${i & 255}`);

describe('sh through the kernel', () => {
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => close?.());

  it('keeps clients on their server across recompilations; a drain moves only its clients', async () => {
    const memory = createMemoryDataplane();
    const kernel = createKernel({ plugins: [sh, memory.plugin] });
    close = () => kernel.close();
    const route = () => clients.map((c) => memory.connect('web', c)?.server);

    await kernel.apply(config(servers.map((address) => ({ address }))));
    const before = route();
    expect(route()).toEqual(before);

    await kernel.apply(config(servers.map((address) => ({ address, drain: address === '10.0.0.3:80' }))));
    const after = route();
    expect(after).not.toContain('10.0.0.3:80');
    const moved = clients.filter((_, i) => before[i] !== after[i]).length;
    expect(moved).toBe(before.filter((s) => s === '10.0.0.3:80').length);

    // A membership change is not consistent: most clients move (that is mh's job).
    await kernel.apply(config(servers.slice(0, 3).map((address) => ({ address }))));
    const removed = route();
    expect(clients.filter((_, i) => before[i] !== removed[i]).length).toBeGreaterThan(clients.length / 2);
  });
});
