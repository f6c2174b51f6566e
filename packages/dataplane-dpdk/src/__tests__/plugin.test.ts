import { compileOptionsSchema, MetricsRegistry } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { CounterMetrics } from '../metrics.js';
import { nativeUnavailableReason } from '../native.js';
import { synproxyConfig, type DpdkDataplaneOptions } from '../options.js';
import { dpdkDataplane } from '../plugin.js';
import { add, CLIENT, fromClient, harness, snapshot, VIP } from './fixtures.js';
import { arpFrame, icmpEchoFrame, TCP, tcpFrame } from './frames.js';
import { Flow, toaSettings } from './insert-flow.js';

describe('the dpdk plugin declaration', () => {
  it('declares only what this release does', () => {
    expect(dpdkDataplane).toMatchObject({ kind: 'dataplane', name: 'dpdk', kernel: '^0.1.0' });
    expect([...dpdkDataplane.capabilities].sort()).toEqual([
      'fullnat',
      'local-addresses',
      'proxy-protocol',
      'synproxy',
      'tcp',
      'toa',
      'udp',
    ]);
  });

  it("validates the issue's config shape and fills defaults (durations in ms)", () => {
    const validate = compileOptionsSchema(dpdkDataplane.optionsSchema);
    const options: Record<string, unknown> = {
      eal: ['-l', '0-1', '--no-huge', '-m', '512', '--no-pci', '--no-telemetry', '--file-prefix', 'fulcrum'],
      ports: [
        {
          name: 'wan',
          vdev: 'net_af_xdp0,iface=veth-wan,start_queue=0,queue_count=1',
          addresses: ['10.1.0.1/24'],
        },
        {
          name: 'lan',
          vdev: 'net_af_xdp1,iface=veth-lan,start_queue=0,queue_count=1',
          addresses: ['10.2.0.1/24'],
        },
      ],
      routes: [{ to: '0.0.0.0/0', via: '10.1.0.254', port: 'wan' }],
      timeouts: { established: '15m' },
      tcp: { mssClamp: 'auto' },
      synproxy: { synackOptions: { timestamp: true }, connReuseState: { finWait: true } },
    };
    expect(validate(options)).toBe(true);
    expect(options).toMatchObject({
      maxConnections: 1_048_576,
      localPorts: { min: 1024, max: 65535 },
      timeouts: { established: 900_000, synRecv: 30_000, udpOneway: 20_000 },
      neighbors: [],
      synproxy: {
        synackOptions: { mss: 1452, ttl: 63, sack: true, timestamp: true },
        maxAckSaved: 3,
        rsSynMaxRetry: 3,
        ackStormThresh: 10,
        connReuseState: { close: true, timeWait: true, finWait: true, closeWait: false, lastAck: false },
        cookieSecretRotate: 60_000,
        retryOtherServer: true,
      },
    });
    const sp = synproxyConfig((options as unknown as DpdkDataplaneOptions).synproxy);
    expect(sp).toMatchObject({ mss: 1452, timestamp: true, secretRotateMs: 60_000, retryOtherServer: true });
    expect(sp.reuseStates).toBe((1 << 4) | (1 << 5) | (1 << 6)); // FIN_WAIT, TIME_WAIT, CLOSE (IPVS numbering)
    expect(sp).not.toHaveProperty('wscale');
  });

  it.each([
    [{ ports: [] }, /ports/],
    [{ ports: [{ name: 'WAN', vdev: 'x', addresses: ['10.1.0.1/24'] }] }, /pattern/],
    [{ ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }], extra: 1 }, /additional/],
    [{ ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/33x'] }] }, /pattern/],
    [{ ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }], maxConnections: 0 }, />= 1/],
    [
      { ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'], rxDescriptors: 32 }] },
      /ports\/0\/rxDescriptors.*>= 64/,
    ],
    [
      { ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'], txDescriptors: 65536 }] },
      /ports\/0\/txDescriptors.*<= 32768/,
    ],
    [{ ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }], tcp: { mssClamp: 40 } }, /oneOf/],
    [{ ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }], tcp: { mssClamp: 'max' } }, /oneOf/],
    [
      {
        ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }],
        synproxy: { synackOptions: { wscale: 15 } },
      },
      /<= 14/,
    ],
    [
      { ports: [{ name: 'wan', vdev: 'x', addresses: ['10.1.0.1/24'] }], synproxy: { maxAckSaved: 0 } },
      />= 1/,
    ],
  ])('refuses %j', (options, re) => {
    const validate = compileOptionsSchema(dpdkDataplane.optionsSchema);
    expect(validate(options)).toBe(false);
    expect(JSON.stringify(validate.errors)).toMatch(re);
  });
});

const need = requires({ check: nativeUnavailableReason });

describe.skipIf(need.skip)(`native counters as prom-client metrics${need.note}`, () => {
  it('exports packets, drops by reason and connections, counting deltas', async () => {
    const h = harness();
    h.apply(add(snapshot()));
    const registry = new MetricsRegistry();
    const m = new CounterMetrics(registry);
    h.inject('wan', Buffer.alloc(5));
    m.update(h.counters());
    h.inject('wan', Buffer.alloc(5));
    m.update(h.counters());
    const text = await registry.text();
    expect(text).toMatch(/fulcrum_dpdk_drops_total\{reason="truncated"\} 2/);
    expect(text).toMatch(/fulcrum_dpdk_packets_total\{direction="rx"\} 2/);
    expect(text).toMatch(/fulcrum_dpdk_connections 0/);
  });

  it('exports TOA / PROXY / MSS rewrites by event', async () => {
    const h = harness();
    h.apply(add(snapshot({ passthrough: toaSettings() })));
    const registry = new MetricsRegistry();
    const m = new CounterMetrics(registry);
    const f = new Flow(h, 40100);
    f.client({ flags: TCP.SYN, seq: 1 });
    f.fromServer({ flags: TCP.SYN | TCP.ACK, seq: 9, ack: 2 });
    f.client({ flags: TCP.ACK, seq: 2, ack: 10 });
    m.update(h.counters());
    expect(await registry.text()).toMatch(/fulcrum_dpdk_tcp_rewrites_total\{event="toa_inserted"\} 1/);
  });

  it('exports ARP and ICMP work by event', async () => {
    const h = harness();
    h.apply(add(snapshot()));
    const registry = new MetricsRegistry();
    const m = new CounterMetrics(registry);
    h.inject('wan', arpFrame(1, CLIENT.mac, CLIENT.ip, '00:00:00:00:00:00', VIP));
    h.inject('wan', icmpEchoFrame(fromClient, CLIENT.ip, VIP, 7, 1, Buffer.from('ping')));
    m.update(h.counters());
    const text = await registry.text();
    expect(text).toMatch(/fulcrum_dpdk_l2l3_total\{event="arp_replies"\} 1/);
    expect(text).toMatch(/fulcrum_dpdk_l2l3_total\{event="icmp_echo_replies"\} 1/);
    expect(text).toMatch(/fulcrum_dpdk_l2l3_total\{event="arp_learned"\} 1/);
    expect(text).toMatch(/fulcrum_dpdk_connection_events_dropped_total 0/);
  });

  it('exports SYNPROXY events by name', async () => {
    const h = harness();
    h.apply(add(snapshot({ synproxy: true })));
    const registry = new MetricsRegistry();
    const m = new CounterMetrics(registry);
    const seg = (flags: number, ack = 0) =>
      tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport: 40000, dport: 80, flags, seq: 5, ack });
    h.inject('wan', seg(TCP.SYN));
    h.inject('wan', seg(TCP.ACK, 12345));
    m.update(h.counters());
    const text = await registry.text();
    expect(text).toMatch(/fulcrum_dpdk_synproxy_total\{event="syn_answered"\} 1/);
    expect(text).toMatch(/fulcrum_dpdk_synproxy_total\{event="bad_cookie"\} 1/);
  });
});
