import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import {
  DataplaneError,
  type ConnectionEntry,
  type ConnectionQuery,
  type ServiceStatus,
  type DataplaneChange,
  type DataplaneInstance,
  type PluginContext,
  type ServiceSnapshot,
  type TimerHandle,
} from '@fulcrum/kernel';
import { ConnTable } from './conn-table.js';
import type { Dest } from './dest.js';
import { SocketMetrics } from './metrics.js';
import { hint } from './tcp-service.js';
import type { SocketDataplaneOptions } from './options.js';
import { headerEncoderFor, type HeaderEncoder } from './proxy-header.js';
import { Runtime } from './runtime.js';
import { createService, type Listener } from './services.js';
import type { VirtualService } from './virtual-service.js';
import { endpoint } from './net-util.js';
import { RelayHost } from './relay-host.js';
import { EARLY_BYTES } from './tcp-conn.js';

/** Which relay a started dataplane uses, and how much it did (for listings and tests). */
export interface RelayInfo {
  mode: 'native' | 'js';
  /** Native relay threads (0 for js). */
  threads: number;
  splice: boolean;
  /** The native relay's threads accept and connect (relayAccept). */
  accepts: boolean;
  /** TCP connections handed to (or accepted by) the native relay so far. */
  handedOff: number;
  /** Connections the native relay holds now. */
  relayed: number;
  /** Accepted connections whose server the relay threads picked themselves (plans they execute). */
  picked: number;
  /** Why `relay: auto` fell back to js, when it did. */
  fallback?: string;
}

/**
 * The socket dataplane: one instance per kernel. Services are created and changed only
 * through apply(); connections are accepted, scheduled and relayed without calling back
 * into the kernel; timers run on the kernel's clock (so tests move time by hand).
 */
export class SocketDataplane implements DataplaneInstance {
  readonly #rt: Runtime;
  readonly #services = new Map<string, VirtualService>();
  /** Removed services still finishing their TCP connections. */
  readonly #retiring = new Set<VirtualService>();
  #sweeper: TimerHandle | undefined;
  #state: 'created' | 'started' | 'stopped' = 'created';
  #fallback: string | undefined;

  constructor(ctx: PluginContext, options: SocketDataplaneOptions) {
    const table = new ConnTable(options.timeouts.timeWait);
    this.#rt = new Runtime({
      options,
      clock: ctx.clock,
      logger: ctx.logger,
      events: ctx.events,
      metrics: new SocketMetrics(ctx.metrics),
      table,
    });
  }

  async start(): Promise<void> {
    if (this.#state !== 'created')
      throw new DataplaneError(`the socket dataplane cannot start: it is ${this.#state}`);
    const o = this.#rt.options;
    if (o.relay !== 'js') {
      try {
        this.#rt.relay = new RelayHost(
          {
            threads: o.relayThreads || availableParallelism(),
            splice: o.relaySplice,
            acceptLocal: o.relayAcceptSpread === 'accepting-thread',
            noDelay: o.noDelay,
            replayLimit: o.retries > 0 ? o.retryBufferBytes : 0,
            earlyLimit: Math.max(o.retryBufferBytes, EARLY_BYTES),
          },
          o.relayAccept && o.responseTimeout === undefined,
        );
      } catch (e) {
        // relay: native must have it (the error says what to build); auto falls back to js.
        if (o.relay === 'native') throw e;
        this.#fallback = (e as Error).message;
        this.#rt.logger.info(
          { event: 'relay_fallback', reason: this.#fallback },
          'socket dataplane: the native relay is not available, relaying in JavaScript',
        );
      }
    }
    this.#state = 'started';
    this.#rt.metrics.attach({
      forEachDest: (fn) => {
        this.#rt.relay?.sync();
        this.#forEachDest(fn);
      },
    });
    this.#sweeper = this.#rt.clock.setInterval(() => this.sweep(), this.#rt.options.sweepInterval);
  }

  async apply(change: DataplaneChange): Promise<void> {
    if (this.#state !== 'started')
      throw new DataplaneError(`the socket dataplane cannot apply a change: it is ${this.#state}`);
    const rt = this.#rt;

    // Prepare everything that can fail; nothing running is touched until all of it succeeded.
    const encoders = new Map<string, HeaderEncoder | undefined>();
    for (const snap of [...change.added, ...change.updated])
      encoders.set(snap.name, headerEncoderFor(snap.name, snap.passthrough));
    for (const snap of change.updated) {
      if (!this.#services.has(snap.name))
        throw new DataplaneError(`no service "${snap.name}" to update`, { details: { service: snap.name } });
    }
    await checkLocalAddresses([...change.added, ...change.updated]);
    const freed = new Map<string, Listener>();
    for (const name of change.removed) {
      const l = this.#services.get(name)?.listener;
      if (l) freed.set(l.key, l);
    }
    const added: { service: VirtualService; reuse?: Listener }[] = [];
    try {
      for (const snap of change.added) {
        const service = createService(rt, snap, encoders.get(snap.name));
        const reuse = freed.get(service.listenKey());
        if (reuse) {
          freed.delete(reuse.key);
          added.push({ service, reuse });
        } else {
          added.push({ service });
          await service.open();
        }
      }
    } catch (e) {
      for (const a of added) if (!a.reuse) a.service.listener?.close();
      throw e;
    }

    // Connections the relay threads accepted and connected on their own reach this loop in
    // batches: take every record first, so that the change sees all of them (a removed
    // service keeps them until they end, a server removed with expire resets them).
    rt.relay?.sync();
    // Commit: synchronous from here, so no connection sees half a change.
    const handedOver = new Set(added.flatMap((a) => (a.reuse ? [a.reuse] : [])));
    for (const name of change.removed) {
      const service = this.#services.get(name);
      if (!service) continue;
      this.#services.delete(name);
      service.retire(service.listener !== undefined && handedOver.has(service.listener));
      if (!service.idle) this.#retiring.add(service);
    }
    for (const a of added) {
      if (a.reuse) a.service.adopt(a.reuse);
      this.#services.set(a.service.name, a.service);
    }
    for (const snap of change.updated) {
      const service = this.#services.get(snap.name)!;
      service.encoder = encoders.get(snap.name);
      service.update(snap);
    }
    rt.logger.debug(
      {
        event: 'dataplane_applied',
        added: change.added.length,
        updated: change.updated.length,
        removed: change.removed.length,
      },
      'socket dataplane applied a change',
    );
  }

  get stopGraceMs(): number {
    return this.#rt.options.stopGrace;
  }

  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    const wasStarted = this.#state === 'started';
    this.#state = 'stopped';
    // As in apply(): every connection the relay threads accepted so far is in the table.
    this.#rt.relay?.sync();
    const all = [...this.#services.values(), ...this.#retiring];
    for (const s of all) s.retire(false);
    if (wasStarted && this.#rt.options.stopGrace > 0) await this.#softStop(this.#rt.options.stopGrace);
    this.#rt.stopping = true;
    this.#sweeper?.cancel();
    for (const s of all) s.closeAll();
    this.#rt.table.expire(this.#rt.clock.now(), true);
    // Sockets report 'close' on a later turn of the event loop; give them a few turns.
    for (let i = 0; i < 20 && this.#rt.table.size > 0; i++) {
      await new Promise((r) => setImmediate(r));
      this.#rt.relay?.sync();
    }
    this.#rt.relay?.stop();
    this.#rt.relay = undefined;
    for (const c of [...this.#rt.table.values()]) c.remove();
    this.#services.clear();
    this.#retiring.clear();
    if (wasStarted) this.#rt.metrics.detach();
  }

  /**
   * Listeners are closed; waits until no TCP connection holds sockets or `graceMs` passes.
   * Timeouts keep running meanwhile. UDP sessions are not waited for: their replies leave
   * from the VIP socket, which is closed.
   */
  async #softStop(graceMs: number): Promise<void> {
    const clock = this.#rt.clock;
    const end = clock.now() + graceMs;
    const liveTcp = () => this.services().reduce((n, s) => n + (s.protocol === 'tcp' ? s.liveConns : 0), 0);
    let live = liveTcp();
    if (live > 0)
      this.#rt.logger.info(
        { event: 'soft_stop', connections: live, graceMs },
        'waiting for connections to finish',
      );
    while (live > 0 && clock.now() < end) {
      await new Promise<void>((r) => clock.setTimeout(r, Math.min(50, Math.max(1, end - clock.now()))));
      live = liveTcp();
    }
    if (live > 0)
      this.#rt.logger.warn(
        { event: 'soft_stop_expired', connections: live },
        `${live} connection(s) reset after the stop grace`,
      );
  }

  /** Runs timeouts, drains and template expiry; the clock calls it every sweepInterval. */
  sweep(): void {
    const now = this.#rt.clock.now();
    this.#rt.relay?.sync();
    this.#rt.table.sweep(now);
    for (const s of this.#services.values()) s.sweep(now);
    for (const s of this.#retiring) if (s.idle) this.#retiring.delete(s);
  }

  /** Every connection and persistence template, as `ipvsadm -lnc` lists them. */
  connections(options: ConnectionQuery = {}): ConnectionEntry[] {
    this.#rt.relay?.sync();
    const now = this.#rt.clock.now();
    const out: ConnectionEntry[] = [];
    for (const c of this.#rt.table.values()) {
      const local = c.localEndpoint();
      out.push({
        protocol: c.protocol === 'tcp' ? 'TCP' : 'UDP',
        state: c.state,
        expiresInMs: Math.max(0, c.timeoutMs() - (now - c.lastActive)),
        client: c.client,
        virtual: c.service.virtual,
        server: c.dest?.key ?? '-',
        service: c.service.name,
        ...(local ? { local } : {}),
      });
    }
    const timeWait = this.#rt.options.timeouts.timeWait;
    this.#rt.table.forEachLingering((e) => {
      out.push({
        protocol: 'TCP',
        state: e.state,
        expiresInMs: Math.max(0, timeWait - (now - e.since)),
        client: endpoint(e.clientAddress, e.clientPort),
        virtual: e.service.virtual,
        server: e.dest?.key ?? '-',
        service: e.service.name,
      });
    });
    if (options.templates !== false) {
      for (const s of this.#services.values()) {
        const p = s.persistence;
        if (!p) continue;
        for (const t of p.values()) {
          out.push({
            protocol: s.snapshot.protocol === 'tcp' ? 'TCP' : 'UDP',
            state: 'NONE',
            expiresInMs: Math.max(0, p.timeoutMs - (now - t.lastUsed)),
            client: endpoint(t.clientAddress, 0),
            virtual: s.virtual,
            server: t.dest.key,
            service: s.name,
            template: true,
          });
        }
      }
    }
    return out;
  }

  /** Per service and real server: ActiveConn, InActConn, PersistConn and the traffic totals. */
  services(): ServiceStatus[] {
    this.#rt.relay?.sync();
    return [...this.#services.values(), ...this.#retiring].map((s) => ({
      name: s.name,
      protocol: s.snapshot.protocol,
      virtual: s.virtual,
      plan: s.snapshot.plan.kind,
      ...(s.snapshot.persistence ? { persistenceTimeoutMs: s.snapshot.persistence.timeoutMs } : {}),
      liveConns: s.live,
      ...(s.snapshot.maxConnections !== undefined ? { maxConnections: s.snapshot.maxConnections } : {}),
      retiring: s.retiring,
      servers: [...s.dests.values()].map((d) => ({
        server: d.key,
        weight: d.weight,
        inService: d.index >= 0,
        draining: d.drain !== undefined,
        activeConns: d.active,
        inactiveConns: d.inactive,
        persistentConns: d.persistent,
        ...d.stats,
      })),
    }));
  }

  /** Entries in the connection table (live connections and lingering TIME_WAIT/CLOSE ones). */
  get size(): number {
    this.#rt.relay?.sync();
    return this.#rt.table.size;
  }

  /** Which relay moves the bytes of established TCP connections, and how many it took. */
  relayInfo(): RelayInfo {
    const r = this.#rt.relay;
    this.#rt.relay?.sync();
    return {
      mode: r ? 'native' : 'js',
      threads: r?.settings.threads ?? 0,
      splice: r?.settings.splice ?? false,
      accepts: r?.accepts ?? false,
      handedOff: r?.handedOff ?? 0,
      relayed: r?.size ?? 0,
      picked: r?.picked ?? 0,
      ...(this.#fallback ? { fallback: this.#fallback } : {}),
    };
  }

  #forEachDest(fn: (service: string, dest: Dest) => void): void {
    for (const s of [...this.#services.values(), ...this.#retiring])
      for (const d of s.dests.values()) fn(s.name, d);
  }
}

/**
 * FULLNAT local addresses must be addresses of this host: a bind to each, before the change
 * is applied, turns a typo into a rejected change rather than failing connects later.
 */
async function checkLocalAddresses(snapshots: readonly ServiceSnapshot[]): Promise<void> {
  const seen = new Set<string>();
  for (const snap of snapshots) {
    for (const address of snap.localAddresses) {
      if (seen.has(address)) continue;
      seen.add(address);
      await new Promise<void>((resolve, reject) => {
        const probe = createServer();
        probe.once('error', (err: NodeJS.ErrnoException) =>
          reject(
            new DataplaneError(
              `service "${snap.name}": local address ${address} cannot be used: ${err.code ?? err.message}${hint(err.code)}`,
              {
                cause: err,
                details: { service: snap.name, address, errno: err.code },
              },
            ),
          ),
        );
        probe.listen({ host: address, port: 0 }, () => probe.close(() => resolve()));
      });
    }
  }
}
