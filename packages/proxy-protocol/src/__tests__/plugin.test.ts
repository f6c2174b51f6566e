import {
  createKernel,
  defineDataplane,
  defineScheduler,
  type DataplaneChange,
  type FulcrumError,
} from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import proxyProtocol, {
  createHeaderEncoder,
  decodeProxyHeader,
  ProxyProtocolErrorCodes as Codes,
  proxyHeaderFor,
} from '@fulcrum/proxy-protocol';

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (view) => ({ kind: 'sequence', sequence: view.realServers.map((r) => r.index) }),
  }),
});

function dataplane(capabilities: string[]) {
  const changes: DataplaneChange[] = [];
  const plugin = defineDataplane({
    name: 'memory',
    kernel: '^0.1.0',
    capabilities,
    optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({ start: async () => {}, apply: async (c) => void changes.push(c), stop: async () => {} }),
  });
  return { plugin, changes };
}

const service = (passthrough: unknown, protocol = 'tcp') => ({
  dataplane: 'memory',
  services: [
    {
      name: 'web',
      protocol,
      listen: '192.0.2.10:443',
      scheduler: 'rr',
      passthrough,
      realServers: [{ address: '10.0.0.1:8443' }],
    },
  ],
});

async function settingsFor(passthrough: unknown, protocol = 'tcp') {
  const dp = dataplane(['tcp', 'udp', 'proxy-protocol']);
  const kernel = createKernel({ plugins: [rr, dp.plugin, proxyProtocol] });
  await kernel.apply(service(passthrough, protocol) as never);
  await kernel.close();
  return dp.changes[0]!.added[0]!.passthrough!;
}

async function errorOf(
  passthrough: unknown,
  capabilities = ['tcp', 'udp', 'proxy-protocol'],
  protocol = 'tcp',
): Promise<FulcrumError> {
  const kernel = createKernel({ plugins: [rr, dataplane(capabilities).plugin, proxyProtocol] });
  try {
    await kernel.apply(service(passthrough, protocol) as never);
  } catch (e) {
    return e as FulcrumError;
  } finally {
    await kernel.close();
  }
  throw new Error('expected the config to be refused');
}

describe('proxy-protocol passthrough plugin', () => {
  it('defaults to v2 without TLVs, and the dataplane gets JSON settings', async () => {
    const pt = await settingsFor('proxy-protocol');
    expect(pt).toEqual({
      name: 'proxy-protocol',
      requires: ['proxy-protocol'],
      settings: { version: 2, tlvs: { uniqueId: false, crc32c: false, custom: [] } },
    });
    expect(JSON.parse(JSON.stringify(pt.settings))).toEqual(pt.settings);
  });

  it('settings drive the header the dataplane writes before any client byte', async () => {
    const pt = await settingsFor({
      name: 'proxy-protocol',
      options: {
        tlvs: {
          uniqueId: true,
          crc32c: true,
          authority: 'www.example',
          custom: [{ type: 0xe0, value: 'beef', encoding: 'hex' }],
        },
      },
    });
    const encode = createHeaderEncoder(pt.settings);
    const wire = encode({
      protocol: 'tcp',
      client: { address: '203.0.113.7', port: 40000 },
      destination: { address: '192.0.2.10', port: 443 },
      uniqueId: 'c-17',
    });
    const { header } = decodeProxyHeader(wire);
    expect(header).toMatchObject({
      version: 2,
      command: 'proxy',
      transport: 'stream',
      source: { address: '203.0.113.7', port: 40000 },
      destination: { address: '192.0.2.10', port: 443 },
      uniqueId: Buffer.from('c-17'),
      authority: 'www.example',
      tlvs: [{ type: 0xe0, value: Buffer.from([0xbe, 0xef]) }],
    });
    expect(header.crc32c).toBeTypeOf('number');
    const generated = decodeProxyHeader(
      encode({
        protocol: 'tcp',
        client: { address: '::1', port: 1 },
        destination: { address: '::1', port: 2 },
      }),
    ).header;
    expect(generated.uniqueId!.toString()).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('UDP gets a v2 DGRAM header per datagram', async () => {
    const pt = await settingsFor('proxy-protocol', 'udp');
    const { header } = decodeProxyHeader(
      Buffer.concat([
        proxyHeaderFor(pt.settings, {
          protocol: 'udp',
          client: { address: '2001:db8::9', port: 5353 },
          destination: { address: '2001:db8::1', port: 53 },
        }),
        Buffer.from('dns'),
      ]),
    );
    expect(header).toMatchObject({ transport: 'dgram', family: 'inet6' });
  });

  it('v1 writes the text line', async () => {
    const pt = await settingsFor({ name: 'proxy-protocol', options: { version: 1 } });
    expect(
      proxyHeaderFor(pt.settings, {
        protocol: 'tcp',
        client: { address: '203.0.113.7', port: 40000 },
        destination: { address: '192.0.2.10', port: 443 },
      }).toString(),
    ).toBe('PROXY TCP4 203.0.113.7 192.0.2.10 40000 443\r\n');
  });

  it('refuses v1 for a UDP service, and TLVs with v1, with config paths', async () => {
    const udp = await errorOf({ name: 'proxy-protocol', options: { version: 1 } }, undefined, 'udp');
    expect(udp.code).toBe('FULCRUM_CONFIG_INVALID');
    expect(udp.message).toContain('services[0].passthrough.options.version');
    const tlvs = await errorOf({ name: 'proxy-protocol', options: { version: 1, tlvs: { uniqueId: true } } });
    expect(tlvs.message).toContain('services[0].passthrough.options.tlvs');
  });

  it('refuses bad options through the schema', async () => {
    expect((await errorOf({ name: 'proxy-protocol', options: { version: 3 } })).code).toBe(
      'FULCRUM_CONFIG_INVALID',
    );
    expect(
      (await errorOf({ name: 'proxy-protocol', options: { tlvs: { custom: [{ type: 0x05, value: 'x' }] } } }))
        .code,
    ).toBe('FULCRUM_CONFIG_INVALID');
  });

  it('needs a dataplane with the proxy-protocol capability', async () => {
    const e = await errorOf('proxy-protocol', ['tcp']);
    expect(e.code).toBe('FULCRUM_CAPABILITY');
  });

  it('the dataplane-side encoder checks settings that came through JSON', () => {
    expect(() => createHeaderEncoder({ version: 3 })).toThrowError(
      expect.objectContaining({ code: Codes.ENCODE }),
    );
    expect(() =>
      proxyHeaderFor(
        { version: 1 },
        {
          protocol: 'udp',
          client: { address: '1.2.3.4', port: 1 },
          destination: { address: '1.2.3.4', port: 2 },
        },
      ),
    ).toThrowError(expect.objectContaining({ code: Codes.ENCODE }));
  });
});
