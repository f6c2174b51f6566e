import { isDeepStrictEqual } from 'node:util';
import {
  formatEndpoint,
  planHash,
  PlanExecutor,
  type ConnectionTuple,
  type DrainPolicy,
  type ServerLoad,
  type ServiceSnapshot,
} from '@fulcrum/kernel';
import type { Conn } from './conn.js';
import { Dest } from './dest.js';
import { Persistence } from './persistence.js';
import type { HeaderEncoder } from './proxy-header.js';
import type { Runtime } from './runtime.js';

const EXCLUDED: ServerLoad = { active: Infinity, inactive: Infinity };

/**
 * What TCP and UDP services share: the servers (IPVS dests), the plan executor, the
 * persistence templates, the local-address pool, and the reactions to a new snapshot.
 */
export abstract class VirtualService {
  readonly rt: Runtime;
  readonly name: string;
  /** `VIP:port` as listings name it. */
  readonly virtual: string;
  snapshot: ServiceSnapshot;
  readonly dests = new Map<string, Dest>();
  /** Servers by index in the current snapshot. */
  byIndex: Dest[] = [];
  persistence: Persistence | undefined;
  /** Writes the PROXY protocol header when the service's passthrough asks for it. */
  encoder: HeaderEncoder | undefined;
  /** Connections holding sockets (maxConnections counts these). */
  live = 0;
  /** Removed from the configuration: no new connections; disposed when the last one ends. */
  retiring = false;
  /** Moves on each time the plan changes (a sequence then starts again from its beginning). */
  planVersion = 0;
  readonly #executor: PlanExecutor;
  readonly #load = (i: number): ServerLoad => this.byIndex[i] ?? EXCLUDED;
  #local4: string[] = [];
  #local6: string[] = [];
  #localCursor = 0;

  constructor(rt: Runtime, snapshot: ServiceSnapshot, encoder: HeaderEncoder | undefined) {
    this.rt = rt;
    this.encoder = encoder;
    this.name = snapshot.name;
    this.virtual = formatEndpoint(snapshot.listen);
    this.snapshot = snapshot;
    this.#executor = new PlanExecutor(snapshot.plan);
    this.update(snapshot);
  }

  /** Takes a new snapshot: servers, weights, plan, persistence, local addresses; acts on `retired`. */
  update(snapshot: ServiceSnapshot): void {
    const now = this.rt.clock.now();
    const previous = this.snapshot;
    const seen = new Set<string>();
    this.byIndex = snapshot.realServers.map((rs) => {
      let d = this.dests.get(rs.key);
      if (!d) this.dests.set(rs.key, (d = new Dest(rs.key, rs.address, rs.port)));
      d.index = rs.index;
      d.weight = rs.weight;
      // A drained or failed server that comes back with a weight takes connections again.
      if (d.drain && rs.weight > 0) d.drain = undefined;
      seen.add(rs.key);
      return d;
    });
    for (const d of this.dests.values()) {
      if (seen.has(d.key)) continue;
      d.index = -1;
      d.weight = 0;
    }
    if (previous !== snapshot && !isDeepStrictEqual(previous.plan, snapshot.plan)) {
      this.#executor.swap(snapshot.plan);
      this.planVersion++;
    }
    this.snapshot = snapshot;

    for (const r of snapshot.retired) {
      const d = this.dests.get(r.server);
      if (!d) continue;
      if (r.action === 'expire') this.expireDest(d);
      else this.drainDest(d, now, snapshot.drain);
    }

    if (snapshot.persistence) {
      this.persistence ??= new Persistence(snapshot.persistence.timeoutMs);
      this.persistence.timeoutMs = snapshot.persistence.timeoutMs;
      this.persistence.dropUnavailable();
    } else if (this.persistence) {
      this.persistence.clear();
      this.persistence = undefined;
    }

    this.#local4 = snapshot.localAddresses.filter((a) => !a.includes(':'));
    this.#local6 = snapshot.localAddresses.filter((a) => a.includes(':'));
    for (const d of [...this.dests.values()]) this.#dropIfUnused(d);
  }

  /**
   * Picks a server for a new connection, or for a retry when `tried` is not empty (never
   * one of those, never one that may not take connections). Persistence wins when its
   * template's server is available; undefined when nothing can be scheduled.
   */
  schedule(tuple: ConnectionTuple, tried: readonly Dest[]): Dest | undefined {
    if (this.persistence && tried.length === 0) {
      const d = this.persistence.lookup(tuple.sourceAddress, this.rt.clock.now());
      if (d) return d;
    }
    const plan = this.#executor.plan;
    const ok = (i: number): Dest | undefined => {
      const d = i >= 0 ? this.byIndex[i] : undefined;
      return d && d.available && !tried.includes(d) ? d : undefined;
    };
    switch (plan.kind) {
      case 'least-connections': {
        const load = tried.length
          ? (i: number) => (tried.includes(this.byIndex[i]!) ? EXCLUDED : this.#load(i))
          : this.#load;
        return ok(this.#executor.pick(tuple, load));
      }
      case 'sequence': {
        // The cursor moves on past servers already tried, as IPVS rr moves past overloaded ones.
        for (let n = 0; n < plan.sequence.length; n++) {
          const turn = this.sequenceTurn();
          const d = ok(
            turn === undefined
              ? this.#executor.pick(tuple, this.#load)
              : plan.sequence[turn % plan.sequence.length]!,
          );
          if (d) return d;
        }
        return undefined;
      }
      case 'hash': {
        const first = ok(this.#executor.pick(tuple, this.#load));
        if (first || tried.length === 0) return first;
        // A retry walks the table on from the client's slot (as mh-fallback does).
        const h = planHash(plan.fields, tuple);
        for (let k = 1; k < plan.table.length; k++) {
          const d = ok(plan.table[(h + k) % plan.table.length]!);
          if (d) return d;
        }
        return undefined;
      }
    }
  }

  /**
   * The next turn of the sequence when another worker's cursor walks it (the native relay's,
   * while it executes the plan); undefined: this service's own cursor.
   */
  protected sequenceTurn(): number | undefined {
    return undefined;
  }

  /** Records a connection's server in its client's template (persistence on). */
  persist(conn: Conn, dest: Dest): void {
    if (!this.persistence) return;
    const t = this.persistence.assign(conn.clientAddress, dest, this.rt.clock.now());
    if (conn.template !== t) {
      if (conn.template) conn.template.conns--;
      conn.template = t;
      t.conns++;
    }
  }

  releaseTemplate(conn: Conn): void {
    const t = conn.template;
    if (!t) return;
    conn.template = undefined;
    t.conns--;
    t.lastUsed = this.rt.clock.now();
  }

  /** The next FULLNAT local address of the server's family, round-robin; undefined: the host picks. */
  localAddressFor(dest: Dest): string | undefined {
    const pool = dest.family === 4 ? this.#local4 : this.#local6;
    if (pool.length === 0) return undefined;
    return pool[this.#localCursor++ % pool.length];
  }

  localAddressCount(dest: Dest): number {
    return (dest.family === 4 ? this.#local4 : this.#local6).length;
  }

  /** `expire`: the server's connections end now (a reset, as IPVS's expire_nodest_conn). */
  expireDest(dest: Dest): void {
    for (const c of [...dest.conns]) if (c.live) c.close('expire');
    this.persistence?.dropUnavailable();
  }

  /** `drain`: no new connections; idle ones close at idleClose, all at the deadline (the table sweep acts). */
  drainDest(dest: Dest, now: number, policy: DrainPolicy): void {
    dest.drain ??= { sinceMs: now, idleCloseMs: policy.idleCloseMs, deadlineAt: now + policy.deadlineMs };
    this.persistence?.dropUnavailable();
  }

  /** Called when a connection leaves the table (`conn` undefined: a lingering entry expired). */
  connRemoved(_conn: Conn | undefined, dest: Dest | undefined): void {
    if (dest) this.#dropIfUnused(dest);
  }

  sweep(now: number): void {
    this.persistence?.sweep(now);
  }

  /** A server no longer in the service is forgotten with its last connection. */
  #dropIfUnused(d: Dest): void {
    if (d.index >= 0 || d.conns.size > 0 || d.lingering > 0 || this.dests.get(d.key) !== d) return;
    this.rt.metrics.flushTotals(this.name, d);
    this.dests.delete(d.key);
  }

  /** Ends every connection (dataplane stop, or a UDP service removed). */
  closeAll(): void {
    for (const d of [...this.dests.values()]) for (const c of [...d.conns]) c.close('stop');
  }

  /** Whether any connection (live or lingering) still belongs to this service. */
  get idle(): boolean {
    for (const d of this.dests.values()) if (d.conns.size > 0 || d.lingering > 0) return false;
    return true;
  }

  abstract listenKey(): string;
  /** The socket bound to the VIP, once open() succeeded or adopt() handed one over. */
  abstract get listener(): Listener | undefined;
  /** Binds the VIP; rejects with a DataplaneError and leaves nothing bound. */
  abstract open(): Promise<void>;
  /** Takes over the listener of the service this one replaces (same protocol and VIP). */
  abstract adopt(listener: Listener): void;
  /** Leaves the configuration: no new connections; `keepListener` when another service adopts it. */
  abstract retire(keepListener: boolean): void;
}

/** A bound VIP socket, which a replacing service may adopt without closing the port. */
export interface Listener {
  readonly key: string;
  close(): void;
}
