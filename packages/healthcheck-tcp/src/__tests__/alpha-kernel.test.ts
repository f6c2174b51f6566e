import { createKernel, defineScheduler } from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import tcp from '../index.js';

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (view) => ({
      kind: 'sequence',
      sequence: view.realServers.filter((s) => s.weight > 0).map((s) => s.index),
    }),
  }),
});

describe('alpha through the kernel', () => {
  it('a server with initialState down is not scheduled before its first check', async () => {
    const md = createMemoryDataplane();
    const kernel = createKernel({ plugins: [rr, md.plugin, tcp] });
    await kernel.apply({
      dataplane: 'memory',
      services: [
        {
          name: 'web',
          listen: '127.0.0.1:8080',
          scheduler: 'rr',
          healthChecks: [{ name: 'tcp', options: { interval: '1h', warmup: '1h', initialState: 'down' } }],
          realServers: [{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2' }],
        },
      ],
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(kernel.snapshot('web').realServers.map((s) => [s.weight, s.health])).toEqual([
      [0, 'down'],
      [0, 'down'],
    ]);
    expect(md.state.services.get('web')!.snapshot.realServers.map((s) => s.weight)).toEqual([0, 0]);
    await kernel.close();
  });
});
