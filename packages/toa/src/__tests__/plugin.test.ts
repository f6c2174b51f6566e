import {
  createKernel,
  defineDataplane,
  defineScheduler,
  type DataplaneChange,
  type FulcrumError,
} from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import toa from '@fulcrum/toa';

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (view) => ({ kind: 'sequence', sequence: view.realServers.map((r) => r.index) }),
  }),
});

function dataplane(name: string, capabilities: string[]) {
  const changes: DataplaneChange[] = [];
  const plugin = defineDataplane({
    name,
    kernel: '^0.1.0',
    capabilities,
    optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({ start: async () => {}, apply: async (c) => void changes.push(c), stop: async () => {} }),
  });
  return { plugin, changes };
}

const config = (dp: string, passthrough: unknown) => ({
  dataplane: dp,
  services: [
    {
      name: 'web',
      listen: '192.0.2.10:80',
      scheduler: 'rr',
      passthrough,
      realServers: [{ address: '10.0.0.1:8080' }],
    },
  ],
});

describe('toa passthrough plugin', () => {
  it('hands a packet dataplane its settings', async () => {
    const dp = dataplane('dpdk', ['tcp', 'fullnat', 'toa']);
    const kernel = createKernel({ plugins: [rr, dp.plugin, toa] });
    await kernel.apply(config('dpdk', 'toa') as never);
    await kernel.close();
    expect(dp.changes[0]!.added[0]!.passthrough).toEqual({
      name: 'toa',
      requires: ['toa'],
      settings: { kind: 254, lengths: { ipv4: 8, ipv6: 20 }, position: 'first', onNoRoom: 'prune' },
    });
  });

  it('is refused on a dataplane without the toa capability, naming the alternatives', async () => {
    const kernel = createKernel({
      plugins: [rr, dataplane('socket', ['tcp', 'udp', 'proxy-protocol']).plugin, toa],
    });
    let error: FulcrumError | undefined;
    try {
      await kernel.apply(config('socket', { name: 'toa', options: { onNoRoom: 'skip' } }) as never);
    } catch (e) {
      error = e as FulcrumError;
    } finally {
      await kernel.close();
    }
    expect(error?.code).toBe('FULCRUM_CAPABILITY');
    expect(error?.message).toContain('services[0].passthrough');
    expect(error?.message).toMatch(/dpdk/);
    expect(error?.message).toMatch(/proxy-protocol/);
  });

  it('validates its options', async () => {
    const kernel = createKernel({ plugins: [rr, dataplane('dpdk', ['tcp', 'toa']).plugin, toa] });
    await expect(
      kernel.apply(config('dpdk', { name: 'toa', options: { onNoRoom: 'drop' } }) as never),
    ).rejects.toMatchObject({ code: 'FULCRUM_CONFIG_INVALID' });
    await kernel.close();
  });
});
