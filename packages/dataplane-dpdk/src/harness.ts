import type { DataplaneChange, ServiceStatus } from '@fulcrum/kernel';
import { ipv4ToNumber, parseCidr, parseMac } from './ipv4.js';
import {
  loadNative,
  type NativeConnEvent,
  type NativeConnection,
  type NativeCounters,
  type NativeHarness,
  type NativeSignal,
} from './native.js';
import {
  DEFAULT_SYNPROXY,
  nativeMssClamp,
  synproxyConfig,
  timeoutTables,
  type DpdkDataplaneOptions,
  type DpdkSynproxyOptions,
} from './options.js';
import { ServiceTable } from './services.js';

export interface HarnessPort {
  name: string;
  mac: string;
  addresses: string[];
  /** Largest IP packet the port sends (default 1500). */
  mtu?: number;
}

export interface HarnessOptions {
  ports: HarnessPort[];
  routes?: { to: string; via?: string; port: string }[];
  neighbors?: { address: string; mac: string; port: string }[];
  maxConnections?: number;
  localPorts?: { min: number; max: number };
  timeouts?: Partial<DpdkDataplaneOptions['timeouts']>;
  tcp?: Partial<DpdkDataplaneOptions['tcp']>;
  /**
   * Worker pipelines, as the EAL runs one per lcore (default 1). Each owns the local ports
   * `p % workers == worker`; a reply received by another worker goes to the owner through
   * its redirect ring, exactly as on the EAL workers.
   */
  workers?: number;
  /** Frames each worker's redirect ring holds (default 1024). */
  redirectRing?: number;
  /** Record connection opened/closed events (connectionEvents()). */
  connectionEvents?: boolean;
  /** At most this many per worker between two connectionEvents() calls (default 8192). */
  connectionEventsMax?: number;
  /**
   * expire's table walk per worker loop iteration (apply(), step(), and every inject or
   * burst end with one): `slots` empty table slots' worth, a connection looked at costing
   * `connCost` more and one reset `resetCost` more (default 65,536, 1 and 40, as on the EAL
   * workers). `{ slots: n, connCost: 0, resetCost: 0 }`: exactly n slots per iteration.
   */
  expireChunk?: { slots: number; connCost: number; resetCost: number };
  synproxy?: Partial<Omit<DpdkSynproxyOptions, 'synackOptions' | 'connReuseState'>> & {
    synackOptions?: Partial<DpdkSynproxyOptions['synackOptions']>;
    connReuseState?: Partial<DpdkSynproxyOptions['connReuseState']>;
  };
}

export interface EmittedFrame {
  port: string;
  frame: Buffer;
  /** The worker that sent it. */
  worker: number;
}

const DEFAULT_TIMEOUTS: DpdkDataplaneOptions['timeouts'] = {
  established: 90_000,
  synSent: 3000,
  synRecv: 30_000,
  finWait: 7000,
  timeWait: 7000,
  close: 3000,
  closeWait: 7000,
  lastAck: 7000,
  udp: 300_000,
  udpOneway: 20_000,
};

/**
 * The dataplane's packet pipeline without a NIC: frames in, frames out, with a clock the
 * caller drives. The same core and the same snapshot conversion as the EAL dataplane, so
 * FULLNAT, TCP states, ARP, ICMP and checksums are tested packet by packet.
 */
export class PacketHarness {
  readonly #native: NativeHarness;
  readonly #ports: string[];
  readonly #services = new ServiceTable();
  readonly #workers: number;
  #now = 0;

  constructor(options: HarnessOptions) {
    const binding = loadNative();
    const t = timeoutTables({ ...DEFAULT_TIMEOUTS, ...options.timeouts });
    this.#native = new binding.Harness({
      connCapacity: options.maxConnections ?? 65536,
      localPortMin: options.localPorts?.min ?? 1024,
      localPortMax: options.localPorts?.max ?? 65535,
      mssClamp: nativeMssClamp(options.tcp?.mssClamp),
      tcpWindowCheck: options.tcp?.windowCheck ?? true,
      tcpResetUnknown: options.tcp?.resetUnknown ?? 1000,
      tcpTimeoutsMs: t.tcp,
      udpTimeoutsMs: t.udp,
      workers: options.workers ?? 1,
      redirectRing: options.redirectRing ?? 1024,
      connEvents: options.connectionEvents ?? false,
      connEventsMax: options.connectionEventsMax ?? 8192,
      ...(options.expireChunk
        ? {
            expireChunkSlots: options.expireChunk.slots,
            expireConnCost: options.expireChunk.connCost,
            expireResetCost: options.expireChunk.resetCost,
          }
        : {}),
      synproxy: synproxyConfig({
        ...DEFAULT_SYNPROXY,
        ...options.synproxy,
        synackOptions: { ...DEFAULT_SYNPROXY.synackOptions, ...options.synproxy?.synackOptions },
        connReuseState: { ...DEFAULT_SYNPROXY.connReuseState, ...options.synproxy?.connReuseState },
      }),
    });
    this.#workers = options.workers ?? 1;
    this.#ports = options.ports.map((p) => p.name);
    options.ports.forEach((p, id) => {
      const mac = parseMac(p.mac);
      if (!mac) throw new TypeError(`port ${p.name}: bad MAC ${p.mac}`);
      const addrs = p.addresses.flatMap((a) => {
        const c = parseCidr(a);
        if (!c) throw new TypeError(`port ${p.name}: bad address ${a}`);
        return [ipv4ToNumber(c.address), c.prefix];
      });
      this.#native.addPort(id, mac, addrs, p.mtu ?? 1500);
    });
    for (const r of options.routes ?? []) {
      const c = parseCidr(r.to);
      if (!c) throw new TypeError(`route: bad destination ${r.to}`);
      this.#native.addRoute(
        ipv4ToNumber(c.address),
        c.prefix,
        r.via ? ipv4ToNumber(r.via) : 0,
        this.#portId(r.port),
      );
    }
    for (const n of options.neighbors ?? []) this.addNeighbor(n.port, n.address, n.mac);
  }

  addNeighbor(port: string, address: string, mac: string): void {
    const m = parseMac(mac);
    if (!m) throw new TypeError(`bad MAC ${mac}`);
    this.#native.addNeighbor(this.#portId(port), ipv4ToNumber(address), m);
  }

  /**
   * Applies a kernel change (removed, added, updated); throws a DataplaneError and changes
   * nothing on a bad one. Returns the frames the change sent (gratuitous ARP for new
   * addresses), and those of the first chunk of an expire's walk (each worker's next loop
   * iteration; further chunks come with step(), inject() and burst()).
   */
  apply(change: DataplaneChange): EmittedFrame[] {
    this.#services.apply(change, this.#native);
    return this.#frames(this.#native.flush());
  }

  /**
   * Feeds one frame received on `port` at `nowMs` by `worker` (the queue RSS or the kernel
   * picked); returns every frame the workers sent, the redirected ones included.
   */
  inject(port: string, frame: Buffer, nowMs = 0, worker = 0): EmittedFrame[] {
    this.#now = nowMs;
    return this.#frames(this.#native.inject(this.#portId(port), frame, nowMs, this.#worker(worker)));
  }

  /**
   * One RX burst on `worker`: every frame is processed or redirected before any worker
   * drains its redirect ring (so a small ring overflows as on a busy lcore); then each
   * worker's next iteration runs.
   */
  burst(worker: number, frames: readonly { port: string; frame: Buffer }[], nowMs = 0): EmittedFrame[] {
    this.#now = nowMs;
    return this.#frames(
      this.#native.burst(
        this.#worker(worker),
        frames.map((f) => [this.#portId(f.port), f.frame]),
        nowMs,
      ),
    );
  }

  /**
   * Each worker's next loop iteration with nothing received: a chunk of an expire walk under
   * way (as inject() and burst() also run after their frames). Returns the RSTs it sent.
   */
  step(): EmittedFrame[] {
    return this.#frames(this.#native.step());
  }

  /** Per worker: an expire walk is still under way. */
  expireWalking(): boolean[] {
    return this.#native.expireWalking();
  }

  /**
   * Expires `server` of `service` (as a snapshot retiring it with `expire` does, without
   * the snapshot: apply the one that takes it out first), then runs `worker`'s walk to its
   * end, one chunk at a time as its loop would; returns the nanoseconds each chunk took
   * (the RSTs are built and routed, not kept).
   */
  benchExpireWalk(service: string, server: string, worker = 0): number[] {
    const id = this.#services.idOf(service);
    if (id === undefined) throw new RangeError(`no service ${service}`);
    return this.#native.benchExpireWalk(id, server, this.#worker(worker));
  }

  #worker(w: number): number {
    if (!Number.isInteger(w) || w < 0 || w >= this.#workers)
      throw new RangeError(`no worker ${w} (workers: ${this.#workers})`);
    return w;
  }

  #frames(list: [number, Buffer, number][]): EmittedFrame[] {
    return list.map(([id, f, worker]) => ({ port: this.#ports[id] ?? String(id), frame: f, worker }));
  }

  /**
   * Processes each frame `rounds` times in native code (no JavaScript per packet) and
   * returns the nanoseconds spent: the per-packet cost of the pipeline itself.
   */
  bench(frames: readonly { port: string; frame: Buffer }[], rounds: number, nowMs = 0): number {
    for (const f of frames)
      if (f.frame.length > 2048) throw new RangeError('bench frames are at most 2048 bytes');
    return this.#native.bench(
      frames.map((f) => [this.#portId(f.port), f.frame]),
      rounds,
      nowMs,
    );
  }

  /**
   * As bench(), but each frame is received by `worker` in bursts of 32, as from its RX
   * queue: the owner check runs on every frame, and those another worker owns go through
   * its redirect ring before it processes them. On one thread (the software cost of a
   * redirect), or with `across` the owners drain their rings on a second thread on CPU 1
   * while this one receives on CPU 0 (with the cache traffic between two cores; the time is
   * the slower stage's).
   */
  benchReceived(
    frames: readonly { port: string; frame: Buffer }[],
    rounds: number,
    worker: number,
    nowMs = 0,
    across = false,
  ): number {
    for (const f of frames)
      if (f.frame.length > 2048) throw new RangeError('bench frames are at most 2048 bytes');
    return this.#native.benchReceived(
      frames.map((f) => [this.#portId(f.port), f.frame]),
      rounds,
      nowMs,
      this.#worker(worker),
      across,
    );
  }

  /**
   * Ends the connections whose timeout passed by `nowMs`; returns how many. Frames expiry
   * sent (SYNPROXY's SYN retransmissions, a retry on another server) go to `sent`.
   */
  expire(nowMs: number, sent?: EmittedFrame[]): number {
    this.#now = nowMs;
    const out: [number, Buffer, number][] = [];
    const n = this.#native.expire(nowMs, out);
    sent?.push(...this.#frames(out));
    return n;
  }

  /** Passive-health signals since the last call. */
  signals(): NativeSignal[] {
    return this.#native.signals();
  }

  /** Counters summed over the workers. */
  counters(): NativeCounters {
    return this.#native.counters();
  }

  /** Connections opened and closed since the last call, every worker's. */
  connectionEvents(): NativeConnEvent[] {
    return this.#native.connectionEvents();
  }

  /** Each worker's own counters (`redirected`, `drop_redirect_ring_full`, connections…). */
  workerCounters(): NativeCounters[] {
    return this.#native.workerCounters();
  }

  /** Services with live per-server counts, as `ipvsadm -ln --stats` shows them. */
  services(): ServiceStatus[] {
    return this.#services.status(this.#native.services());
  }

  /**
   * Every worker's connections, copied out by the workers a chunk at a time as the EAL
   * workers do; `expiresInMs` counts from the last time given to inject/burst/expire.
   */
  connections(): NativeConnection[] {
    return this.#native.connections(this.#now);
  }

  #portId(name: string): number {
    const id = this.#ports.indexOf(name);
    if (id < 0) throw new TypeError(`no port named ${name}`);
    return id;
  }
}
