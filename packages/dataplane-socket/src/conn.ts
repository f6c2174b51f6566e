import type { ConnectionFailureReason, ConnectionTuple } from '@fulcrum/kernel';
import type { LingerState } from './conn-table.js';
import type { Dest } from './dest.js';
import { endpoint } from './net-util.js';
import type { Template } from './persistence.js';
import type { Runtime } from './runtime.js';
import type { VirtualService } from './virtual-service.js';

/**
 * Connection states, with IPVS's names (`ipvsadm -lnc`):
 * - TCP: SYN_SENT while connecting to the real server, ESTABLISHED, CLOSE_WAIT (the client
 *   sent FIN), FIN_WAIT (the server sent FIN), LAST_ACK (both sent FIN, still flushing),
 *   TIME_WAIT (closed cleanly) and CLOSE (ended by a reset), the last two kept for a while;
 * - UDP: ONEWAY until the server first answers, then ESTABLISHED (DPVS's NORMAL).
 */
export type TcpState =
  'SYN_SENT' | 'ESTABLISHED' | 'CLOSE_WAIT' | 'FIN_WAIT' | 'LAST_ACK' | 'TIME_WAIT' | 'CLOSE';
export type UdpState = 'ONEWAY' | 'ESTABLISHED';
export type ConnState = TcpState | UdpState;

/** Why the dataplane ends a connection itself. */
export type CloseCause = 'drain' | 'expire' | 'stop';

let nextId = 1;

/** One entry of the connection table: a TCP connection or a UDP session. */
export abstract class Conn {
  abstract readonly protocol: 'tcp' | 'udp';
  /** The client's 4-tuple toward the virtual service, as plans hash it. */
  abstract readonly tuple: ConnectionTuple;
  readonly id = nextId++;
  readonly rt: Runtime;
  readonly service: VirtualService;
  readonly clientAddress: string;
  readonly clientPort: number;
  #client: string | undefined;
  readonly createdAt: number;
  state: ConnState;
  dest: Dest | undefined;
  /** Positions in the table's and the server's member sets (theirs to set; -1: not in it). */
  tableSlot = -1;
  destSlot = -1;
  /** Time of the last byte either way (or of the last state change). */
  lastActive: number;
  /** Still holds sockets: counts toward the service's maxConnections. */
  live = true;
  template: Template | undefined;
  #countedActive = false;
  #tried: Dest[] | undefined;
  #retriesLeft: number;

  constructor(
    rt: Runtime,
    service: VirtualService,
    clientAddress: string,
    clientPort: number,
    client: string | undefined,
    state: ConnState,
  ) {
    this.rt = rt;
    this.service = service;
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
    this.#client = client;
    this.state = state;
    this.createdAt = this.lastActive = rt.clock.now();
    this.#retriesLeft = rt.options.retries;
  }

  /**
   * The current server failed (a TCP server before it answered, a UDP server that never
   * did): a passive-health failure and `connection:failed`; then, when a retry is left,
   * `retry` allows one and the dataplane is not stopping, the next server — counted as a
   * retry, persistence moved to it — for the caller to connect to.
   */
  protected failedOver(
    reason: ConnectionFailureReason,
    err: Error | undefined,
    retry: boolean,
  ): Dest | undefined {
    const dest = this.dest!;
    const service = this.service.name;
    this.rt.serverFailed(service, dest.key, reason, err);
    (this.#tried ??= []).push(dest);
    let next: Dest | undefined;
    if (this.#retriesLeft > 0 && retry && !this.rt.stopping && !this.service.retiring)
      next = this.service.schedule(this.tuple, this.#tried);
    this.rt.emit('connection:failed', () => ({
      service,
      server: dest.key,
      client: this.client,
      reason,
      retried: next !== undefined,
    }));
    if (next) {
      this.#retriesLeft--;
      this.rt.metrics.retries.inc({ service, server: dest.key });
      this.service.persist(this, next);
    }
    return next;
  }

  /** `address:port` of the client, as events and listings name it (built when first asked). */
  get client(): string {
    return (this.#client ??= endpoint(this.clientAddress, this.clientPort));
  }

  /** The idle time after which `onTimeout` runs, for the current state. */
  abstract timeoutMs(): number;
  abstract onTimeout(now: number): void;
  /** Ends the connection on the dataplane's decision (drain, server expired, stop). */
  abstract close(cause: CloseCause): void;
  /** `address:port` the balancer uses toward the server (FULLNAT's local address), asked only when listed. */
  abstract localEndpoint(): string | undefined;
  /** Per-sweep checks beyond the idle timeout (TCP's responseTimeout). */
  tick(_now: number): void {}

  /** Attaches to a server, moving the ActiveConn/InActConn counts (a retry moves servers). */
  bindDest(dest: Dest): void {
    this.unbindDest();
    this.dest = dest;
    dest.conns.add(this);
    this.#countedActive = this.state === 'ESTABLISHED';
    if (this.#countedActive) dest.active++;
    else dest.inactive++;
  }

  unbindDest(): void {
    const d = this.dest;
    if (!d) return;
    if (this.#countedActive) d.active--;
    else d.inactive--;
    d.conns.delete(this);
    this.dest = undefined;
  }

  setState(state: ConnState): void {
    if (state === this.state) return;
    this.state = state;
    this.lastActive = this.rt.clock.now();
    const active = state === 'ESTABLISHED';
    const d = this.dest;
    if (d && active !== this.#countedActive) {
      if (active) {
        d.active++;
        d.inactive--;
      } else {
        d.active--;
        d.inactive++;
      }
    }
    this.#countedActive = active;
  }

  /** The connection stops holding sockets (it may stay listed, as TIME_WAIT). */
  protected released(): void {
    if (!this.live) return;
    this.live = false;
    this.service.live--;
    this.service.releaseTemplate(this);
  }

  /**
   * Closed: it leaves the table as an object and lingers in the table's ring for
   * `timeWait` (TIME_WAIT, or CLOSE after a reset), listed and counted as inactive.
   */
  protected linger(state: LingerState): void {
    if (this.live) this.released();
    this.rt.table.linger(this, state, this.rt.clock.now());
    this.state = state;
  }

  /** Leaves the table for good. */
  remove(): void {
    if (this.live) this.released();
    const dest = this.dest;
    this.unbindDest();
    this.rt.table.delete(this);
    this.service.connRemoved(this, dest);
  }
}
