import type { MetricsRegistry } from '@fulcrum/kernel';
import type { NativeCounters, NativePortStats } from './native.js';

/** The native counters `fulcrum_dpdk_l2l3_total` reports, each under its own name. */
const L2L3_EVENTS = [
  'arp_replies',
  'arp_requests_sent',
  'arp_requests_suppressed',
  'arp_learned',
  'garp_sent',
  'icmp_echo_replies',
] as const;

/**
 * Turns the native counters (monotonic, read on demand) into prom-client metrics:
 * packets and bytes by direction, drops by reason, connections created and expired.
 */
export class CounterMetrics {
  #last: NativeCounters = {};
  #lastPorts = new Map<string, NativePortStats>();
  readonly #portPackets;
  readonly #portBytes;
  readonly #portDrops;
  readonly #packets;
  readonly #bytes;
  readonly #drops;
  readonly #conns;
  readonly #open;
  readonly #rewrites;
  readonly #redirected;
  readonly #workerPackets;
  readonly #workerConns;
  #lastWorkers: NativeCounters[] = [];
  readonly #synproxy;
  readonly #l2l3;
  readonly #eventsDropped;
  readonly #missPassed;
  readonly #resets;
  readonly #strayResets;

  constructor(metrics: MetricsRegistry) {
    this.#packets = metrics.counter({
      name: 'fulcrum_dpdk_packets_total',
      help: 'Packets received and transmitted by the dpdk dataplane',
      labelNames: ['direction'] as const,
    });
    this.#bytes = metrics.counter({
      name: 'fulcrum_dpdk_bytes_total',
      help: 'Bytes received and transmitted by the dpdk dataplane',
      labelNames: ['direction'] as const,
    });
    this.#drops = metrics.counter({
      name: 'fulcrum_dpdk_drops_total',
      help: 'Packets the dpdk dataplane dropped, by reason',
      labelNames: ['reason'] as const,
    });
    this.#conns = metrics.counter({
      name: 'fulcrum_dpdk_connections_total',
      help: 'Connections created, expired and retired by the dpdk dataplane; drain_idle, drain_deadline: ended by a drain; reset: ended with RSTs (drain or expire)',
      labelNames: ['event'] as const,
    });
    this.#portPackets = metrics.counter({
      name: 'fulcrum_dpdk_port_packets_total',
      help: 'Packets each DPDK port received and sent (rte_eth_stats)',
      labelNames: ['port', 'direction'] as const,
    });
    this.#portBytes = metrics.counter({
      name: 'fulcrum_dpdk_port_bytes_total',
      help: 'Bytes each DPDK port received and sent (rte_eth_stats)',
      labelNames: ['port', 'direction'] as const,
    });
    this.#portDrops = metrics.counter({
      name: 'fulcrum_dpdk_port_drops_total',
      help: 'Packets each DPDK port dropped or failed, by reason (imissed, ierrors, oerrors, rx_nombuf)',
      labelNames: ['port', 'reason'] as const,
    });
    this.#rewrites = metrics.counter({
      name: 'fulcrum_dpdk_tcp_rewrites_total',
      help: 'TOA options and PROXY headers inserted or skipped, and MSS options clamped, by event',
      labelNames: ['event'] as const,
    });
    this.#redirected = metrics.counter({
      name: 'fulcrum_dpdk_redirected_total',
      help: 'Frames a worker received for a connection another worker owns, handed over through its redirect ring',
    });
    this.#workerPackets = metrics.counter({
      name: 'fulcrum_dpdk_worker_packets_total',
      help: 'Packets each worker lcore received (its queues and its redirect ring) and transmitted',
      labelNames: ['worker', 'direction'] as const,
    });
    this.#workerConns = metrics.gauge({
      name: 'fulcrum_dpdk_worker_connections',
      help: "Connections in each worker lcore's table (how evenly RSS spreads the clients)",
      labelNames: ['worker'] as const,
    });
    this.#synproxy = metrics.counter({
      name: 'fulcrum_dpdk_synproxy_total',
      help: 'SYNPROXY events: cookies sent, ACKs validated or refused, kept, server retries (the synproxy_* counters)',
      labelNames: ['event'] as const,
    });
    this.#l2l3 = metrics.counter({
      name: 'fulcrum_dpdk_l2l3_total',
      help: 'What the dataplane did for itself below L4: ARP replies sent, requests sent and suppressed by the per-neighbour rate limit, neighbours learned, gratuitous ARPs, ICMP echo replies',
      labelNames: ['event'] as const,
    });
    this.#eventsDropped = metrics.counter({
      name: 'fulcrum_dpdk_connection_events_dropped_total',
      help: 'connection:* events the workers could not hand to TypeScript (their event ring was full); counts and health signals are not affected',
    });
    this.#missPassed = metrics.counter({
      name: 'fulcrum_dpdk_miss_passed_total',
      help: 'Client TCP segments a worker had no connection for, passed to the next worker to find theirs (a flow moved by af_packet fanout rollover or an RSS change); limited: not passed, over the per-worker budget',
      labelNames: ['outcome'] as const,
    });
    this.#resets = metrics.counter({
      name: 'fulcrum_dpdk_resets_sent_total',
      help: 'RST segments sent to end connections of servers drained or expired (one or two per side)',
    });
    this.#strayResets = metrics.counter({
      name: 'fulcrum_dpdk_stray_resets_total',
      help: 'TCP segments no connection holds (expired, balancer restarted, a lost RST) answered with a RST (sent), or not, over tcp.resetUnknown per second (limited)',
      labelNames: ['outcome'] as const,
    });
    this.#open = metrics.gauge({
      name: 'fulcrum_dpdk_connections',
      help: 'Connections in the dpdk dataplane table',
    });
  }

  update(c: NativeCounters): void {
    const delta = (k: string) => Math.max(0, (c[k] ?? 0) - (this.#last[k] ?? 0));
    for (const dir of ['rx', 'tx'] as const) {
      this.#packets.inc({ direction: dir }, delta(`${dir}_packets`));
      this.#bytes.inc({ direction: dir }, delta(`${dir}_bytes`));
    }
    for (const k of Object.keys(c))
      if (k.startsWith('drop_')) {
        const d = delta(k);
        if (d > 0) this.#drops.inc({ reason: k.slice(5) }, d);
      } else if (k.startsWith('synproxy_')) {
        const d = delta(k);
        if (d > 0) this.#synproxy.inc({ event: k.slice(9) }, d);
      }
    for (const event of ['created', 'expired', 'retired', 'drain_idle', 'drain_deadline', 'reset'] as const)
      this.#conns.inc({ event }, delta(`conns_${event}`));
    for (const k of Object.keys(c))
      if (k.startsWith('toa_') || k.startsWith('proxy_protocol_') || k === 'mss_clamped') {
        const d = delta(k);
        if (d > 0) this.#rewrites.inc({ event: k }, d);
      }
    for (const k of L2L3_EVENTS) {
      const d = delta(k);
      if (d > 0) this.#l2l3.inc({ event: k }, d);
    }
    this.#eventsDropped.inc(delta('conn_events_dropped'));
    this.#missPassed.inc({ outcome: 'passed' }, delta('miss_passed'));
    this.#missPassed.inc({ outcome: 'limited' }, delta('miss_pass_limited'));
    this.#redirected.inc(delta('redirected'));
    this.#resets.inc(delta('rst_sent'));
    this.#strayResets.inc({ outcome: 'sent' }, delta('rst_unknown_sent'));
    this.#strayResets.inc({ outcome: 'limited' }, delta('rst_unknown_limited'));
    if (c.connections !== undefined) this.#open.set(c.connections);
    this.#last = { ...c };
  }

  /** Each worker's own counters (worker i = the i-th lcore of the EAL -l list). */
  updateWorkers(workers: readonly NativeCounters[]): void {
    workers.forEach((c, i) => {
      const worker = String(i);
      const last = this.#lastWorkers[i] ?? {};
      for (const dir of ['rx', 'tx'] as const)
        this.#workerPackets.inc(
          { worker, direction: dir },
          Math.max(0, (c[`${dir}_packets`] ?? 0) - (last[`${dir}_packets`] ?? 0)),
        );
      if (c.connections !== undefined) this.#workerConns.set({ worker }, c.connections);
    });
    this.#lastWorkers = workers.map((c) => ({ ...c }));
  }

  /** Port statistics, in the order of `names` (the configured ports). */
  updatePorts(names: readonly string[], stats: readonly NativePortStats[]): void {
    stats.forEach((st, i) => {
      const port = names[i] ?? String(i);
      const last = this.#lastPorts.get(port);
      const d = (k: keyof NativePortStats) => Math.max(0, st[k] - (last?.[k] ?? 0));
      this.#portPackets.inc({ port, direction: 'rx' }, d('ipackets'));
      this.#portPackets.inc({ port, direction: 'tx' }, d('opackets'));
      this.#portBytes.inc({ port, direction: 'rx' }, d('ibytes'));
      this.#portBytes.inc({ port, direction: 'tx' }, d('obytes'));
      for (const [reason, k] of [
        ['imissed', 'imissed'],
        ['ierrors', 'ierrors'],
        ['oerrors', 'oerrors'],
        ['rx_nombuf', 'rxNombuf'],
      ] as const)
        this.#portDrops.inc({ port, reason }, d(k));
      this.#lastPorts.set(port, { ...st });
    });
  }
}
