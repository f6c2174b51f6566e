import type {
  ConnectionCloseReason,
  ConnectionEntry,
  ConnectionFailureReason,
  DataplaneChange,
  DataplaneInstance,
  PluginContext,
  ServiceStatus,
  TimerHandle,
} from '@fulcrum/kernel';
import { DpdkErrorCodes, dpdkError } from './errors.js';
import { ipv4ToNumber, parseCidr, parseMac } from './ipv4.js';
import { CounterMetrics } from './metrics.js';
import { loadNative, type NativeBinding, type NativeConnEvent, type NativeSignal } from './native.js';
import { nativeMssClamp, synproxyConfig, timeoutTables, type DpdkDataplaneOptions } from './options.js';
import { ServiceTable, type ServiceSink } from './services.js';
import { toConnectionEntry } from './connections.js';

/**
 * The dpdk dataplane: EAL and the poll loop run on the addon's own thread; this object
 * translates snapshots, forwards passive-health signals to the kernel's bus and keeps
 * the metrics. It stops EAL on every exit path (stop(), process exit, SIGTERM, SIGINT),
 * because a process with a running EAL thread does not exit by itself.
 */
/** How long a connection listing waits for the workers before it answers with what it has. */
const LISTING_TIMEOUT_MS = 1000;

/** The native core's failure reasons are the kernel's; anything else would be a bug, said as `other`. */
function failureReason(r: string | undefined): ConnectionFailureReason {
  return r === 'refused' || r === 'timeout' || r === 'oneway-expired' ? r : 'other';
}

export class DpdkDataplane implements DataplaneInstance {
  readonly #ctx: PluginContext;
  readonly #options: DpdkDataplaneOptions;
  readonly #services = new ServiceTable();
  #native?: NativeBinding;
  #metrics?: CounterMetrics;
  #timer?: TimerHandle;
  #running = false;
  readonly #onExit = () => this.#stopNow();
  readonly #onSignal = (signal: NodeJS.Signals) => {
    this.#stopNow();
    // Our listener replaced the default action: re-raise so the process ends as it would have.
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };

  constructor(ctx: PluginContext, options: DpdkDataplaneOptions) {
    this.#ctx = ctx;
    this.#options = options;
    const names = options.ports.map((p) => p.name);
    for (const p of options.ports)
      if (!p.vdev === !p.pci)
        throw dpdkError(DpdkErrorCodes.EAL, `port ${p.name}: give exactly one of vdev and pci`);
    if (new Set(names).size !== names.length)
      throw dpdkError(DpdkErrorCodes.EAL, 'port names must be unique');
    for (const r of options.routes)
      if (!names.includes(r.port))
        throw dpdkError(DpdkErrorCodes.EAL, `route to ${r.to}: no port named ${r.port}`);
    for (const n of options.neighbors)
      if (!names.includes(n.port))
        throw dpdkError(DpdkErrorCodes.EAL, `neighbour ${n.address}: no port named ${n.port}`);
    if (options.localPorts.min > options.localPorts.max)
      throw dpdkError(DpdkErrorCodes.EAL, 'localPorts.min must not exceed localPorts.max');
    const pci = options.ports.findIndex((p) => p.pci);
    const vdev = options.ports.findIndex((p) => p.vdev);
    // DPDK numbers PCI ports before virtual devices: the order given must match.
    if (pci >= 0 && vdev >= 0 && options.ports.slice(vdev).some((p) => p.pci))
      throw dpdkError(
        DpdkErrorCodes.EAL,
        'list PCI ports before vdev ports (DPDK numbers them in that order)',
      );
  }

  async start(): Promise<void> {
    const native = loadNative();
    const o = this.#options;
    const args = [...o.eal, ...o.ports.flatMap((p) => (p.pci ? ['-a', p.pci] : ['--vdev', p.vdev!]))];
    const ports = o.ports.map((p) => ({
      // DPDK names a vdev port by the vdev name, a PCI port by its address.
      device: p.pci ?? p.vdev!.split(',')[0]!,
      addrs: p.addresses.flatMap((a) => {
        const c = parseCidr(a)!;
        return [ipv4ToNumber(c.address), c.prefix];
      }),
      rxDescriptors: p.rxDescriptors,
      txDescriptors: p.txDescriptors,
    }));
    const t = timeoutTables(o.timeouts);
    process.on('exit', this.#onExit);
    process.on('SIGTERM', this.#onSignal);
    process.on('SIGINT', this.#onSignal);
    try {
      const macs = await native.ealStart(
        args,
        ports,
        {
          connCapacity: o.maxConnections,
          localPortMin: o.localPorts.min,
          localPortMax: o.localPorts.max,
          mssClamp: nativeMssClamp(o.tcp.mssClamp),
          tcpWindowCheck: o.tcp.windowCheck,
          tcpResetUnknown: o.tcp.resetUnknown,
          tcpTimeoutsMs: t.tcp,
          udpTimeoutsMs: t.udp,
          redirectRing: o.redirectRing,
          connEvents: o.connectionEvents,
          idlePolls: o.idle.afterEmptyPolls,
          idleSleepUs: o.idle.mode === 'adaptive' ? o.idle.sleepUs : 0,
          synproxy: synproxyConfig(o.synproxy),
        },
        (kind, payload) => {
          if (kind === 'signals') this.#signals(payload as NativeSignal[]);
          else this.#connectionEvents(payload as NativeConnEvent[]);
        },
      );
      const info = native.ealInfo();
      this.#ctx.logger.info(
        {
          ports: o.ports.map((p, i) => `${p.name}=${macs[i]?.toString('hex').replace(/(..)(?!$)/g, '$1:')}`),
          workers: info?.workers,
          // Replies reach their owner by rte_flow rules where the port takes them, else by ring.
          steering: o.ports.map((p, i) => {
            const s = info?.ports[i];
            return `${p.name}=${s?.steering ? 'rte_flow' : `ring (${s?.reason ?? '?'})`}`;
          }),
          // Descriptors per RX/TX queue, as the driver took them.
          descriptors: o.ports.map(
            (p, i) => `${p.name}=${info?.ports[i]?.rxDescriptors}/${info?.ports[i]?.txDescriptors}`,
          ),
        },
        'dpdk dataplane started',
      );
      if (info && info.idleLcores > 0)
        this.#ctx.logger.warn(
          { event: 'dpdk_lcores_idle', workers: info.workers, idleLcores: info.idleLcores },
          `${info.idleLcores} lcore(s) of -l run no worker: ${info.idleReason}`,
        );
    } catch (e) {
      this.#removeExitHooks();
      throw dpdkError(DpdkErrorCodes.EAL, `DPDK did not start: ${(e as Error).message}`, { eal: args }, e);
    }
    this.#native = native;
    this.#running = true;
    const portId = (name: string) => o.ports.findIndex((p) => p.name === name);
    for (const r of o.routes) {
      const c = parseCidr(r.to)!;
      native.ealAddRoute(ipv4ToNumber(c.address), c.prefix, r.via ? ipv4ToNumber(r.via) : 0, portId(r.port));
    }
    for (const n of o.neighbors)
      native.ealAddNeighbor(portId(n.port), ipv4ToNumber(n.address), parseMac(n.mac)!);
    this.#metrics = new CounterMetrics(this.#ctx.metrics);
    this.#timer = this.#ctx.clock.setInterval(() => this.#collect(), 1000);
  }

  async apply(change: DataplaneChange): Promise<void> {
    const native = this.#native;
    if (!native || !this.#running)
      throw dpdkError(DpdkErrorCodes.EAL, 'the dpdk dataplane is not running: apply() after start()');
    // 2: a worker's command ring stayed full for a second (its lcore is stuck): say so loudly.
    const check = (what: string, rc: number) => {
      if (rc !== 0) this.#ctx.logger.error({ rc, what }, 'dpdk dataplane: a worker did not take a change');
      return rc;
    };
    const sink: ServiceSink = {
      setService: (s) => check(`set ${s.name}`, native.ealSetService(s)),
      removeService: (id) => check(`remove ${id}`, native.ealRemoveService(id)),
      expireServer: (id, server) => check(`expire ${server}`, native.ealExpireServer(id, server)),
      drainServer: (id, server, idle, deadline) =>
        check(`drain ${server}`, native.ealDrainServer(id, server, idle, deadline)),
    };
    this.#services.apply(change, sink);
  }

  /** Per-service and per-server counts, as published by the poll loop (every 100 ms). */
  services(): ServiceStatus[] {
    return this.#services.status(this.#running ? (this.#native?.ealServices() ?? []) : []);
  }

  /**
   * The connection table of every worker (ipvsadm -lnc). The workers copy it out a chunk
   * per loop iteration, so forwarding goes on; this thread waits for them (up to a second,
   * after which the rows copied so far are returned).
   */
  async connections(): Promise<ConnectionEntry[]> {
    const native = this.#native;
    if (!this.#running || !native || !native.ealConnectionsRequest()) return [];
    // The workers copy a chunk per loop iteration; the event loop only looks in now and
    // then, and takes what is there after a second (a partial listing) rather than wait on.
    const deadline = Date.now() + LISTING_TIMEOUT_MS;
    while (!native.ealConnectionsReady() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    return native.ealConnectionsTake().connections.map(toConnectionEntry);
  }

  async stop(): Promise<void> {
    this.#stopNow();
  }

  #collect(): void {
    const c = this.#native?.ealCounters();
    if (c) this.#metrics?.update(c);
    const workers = this.#native?.ealWorkerCounters();
    if (workers) this.#metrics?.updateWorkers(workers);
    const ports = this.#native?.ealPorts();
    if (ports)
      this.#metrics?.updatePorts(
        this.#options.ports.map((p) => p.name),
        ports,
      );
  }

  #signals(list: NativeSignal[]): void {
    for (const s of list) this.#ctx.events.emit('health:signal', s);
  }

  // Batched by the workers (every 100 ms), emitted one by one on the kernel's bus.
  #connectionEvents(list: NativeConnEvent[]): void {
    for (const e of list)
      if (e.failed)
        this.#ctx.events.emit('connection:failed', {
          service: e.service,
          server: e.server,
          client: e.client,
          reason: failureReason(e.reason),
          retried: e.retried === true,
        });
      else if (e.opened)
        this.#ctx.events.emit('connection:opened', {
          service: e.service,
          server: e.server,
          client: e.client,
        });
      else
        this.#ctx.events.emit('connection:closed', {
          service: e.service,
          server: e.server,
          client: e.client,
          durationMs: e.durationMs,
          ...(e.reason ? { reason: e.reason as ConnectionCloseReason } : {}),
        });
  }

  #stopNow(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#removeExitHooks();
    if (!this.#running) return;
    this.#running = false;
    this.#native?.ealStop();
  }

  #removeExitHooks(): void {
    process.off('exit', this.#onExit);
    process.off('SIGTERM', this.#onSignal);
    process.off('SIGINT', this.#onSignal);
  }
}
