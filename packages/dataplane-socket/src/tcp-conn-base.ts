import type { ConnectionFailureReason, ConnectionTuple } from '@fulcrum/kernel';
import { Conn } from './conn.js';
import type { Dest } from './dest.js';
import type { Runtime } from './runtime.js';
import type { TcpService } from './tcp-service.js';

/**
 * What a TCP connection means whichever side moves its bytes (the event loop's sockets in
 * TcpConn, the relay threads in NativeTcpConn): its timeouts per state, when it counts as
 * opened, what a server failing before it answered leads to (the passive-health failure, a
 * retry on another server, or the end), and how it ends (events, TIME_WAIT). The subclasses
 * keep what differs: the sockets or relay records, and how a client is reset.
 */
export abstract class TcpConnBase extends Conn {
  readonly protocol = 'tcp';
  #opened = false;
  #openedAt = 0;

  constructor(rt: Runtime, service: TcpService, tuple: ConnectionTuple, client: string | undefined) {
    super(rt, service, tuple.sourceAddress, tuple.sourcePort, client, 'SYN_SENT');
  }

  /** Connects to `dest`: the first attempt or a retry. */
  abstract connect(dest: Dest): void;

  timeoutMs(): number {
    const t = this.rt.options.timeouts;
    switch (this.state) {
      case 'SYN_SENT':
        return this.rt.options.connectTimeout;
      case 'ESTABLISHED':
        return t.tcp;
      case 'TIME_WAIT':
      case 'CLOSE':
        return t.timeWait;
      default:
        return t.tcpFin;
    }
  }

  /** The first server connection is up: counted for the server, `connection:opened`. */
  protected opened(): void {
    if (this.#opened) return;
    this.#opened = true;
    this.#openedAt = this.rt.clock.now();
    this.dest!.stats.conns++;
    const server = this.dest!.key;
    if (this.rt.listens('connection:opened'))
      this.rt.emit('connection:opened', () => ({ service: this.service.name, server, client: this.client }));
  }

  /**
   * The current server failed before it answered: a passive-health failure, then another
   * server when a retry is left, the client's bytes can be replayed (`replayable`) and the
   * dataplane is not stopping. True: connecting to it; false: retries are exhausted
   * (counted), and the caller resets the client.
   */
  protected retryElsewhere(
    reason: ConnectionFailureReason,
    err: Error | undefined,
    replayable: boolean,
  ): boolean {
    const next = this.failedOver(reason, err, replayable);
    if (next) {
      this.connect(next);
      return true;
    }
    this.rt.metrics.refused.inc({ service: this.service.name, reason: 'retries-exhausted' });
    return false;
  }

  /**
   * Both sides are closed: a server that closed without a byte and without a reset counts
   * as a success, `connection:closed`, then the entry lingers in TIME_WAIT (CLOSE after a
   * reset) or, when expired or with no TIME_WAIT, leaves the table.
   */
  protected finished(how: { answered: boolean; reset: boolean; expired: boolean }): void {
    this.released();
    if (this.#opened && this.dest) {
      const server = this.dest.key;
      const durationMs = this.rt.clock.now() - this.#openedAt;
      if (!how.answered && !how.reset && this.rt.listens('health:signal'))
        this.rt.emit('health:signal', () => ({
          service: this.service.name,
          server,
          ok: true,
          reason: 'closed cleanly',
        }));
      if (this.rt.listens('connection:closed'))
        this.rt.emit('connection:closed', () => ({
          service: this.service.name,
          server,
          client: this.client,
          durationMs,
        }));
    }
    if (how.expired || this.rt.options.timeouts.timeWait === 0) {
      this.remove();
      return;
    }
    this.linger(how.reset ? 'CLOSE' : 'TIME_WAIT');
  }
}
