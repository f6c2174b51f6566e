import { constants } from 'node:os';
import type { ConnectionFailureReason, ConnectionTuple } from '@fulcrum/kernel';
import type { CloseCause } from './conn.js';
import type { Dest } from './dest.js';
import { closedHow, CloseMode, RecordKind } from './native-relay.js';
import { endpoint, failureReason } from './net-util.js';
import type { RelayHost, Relayed } from './relay-host.js';
import type { Runtime } from './runtime.js';
import { TcpConnBase } from './tcp-conn-base.js';
import type { TcpService } from './tcp-service.js';

const ETIMEDOUT = constants.errno.ETIMEDOUT;

/**
 * A TCP connection the native relay accepted (relayAccept): the relay threads own both
 * sockets from the start, and this entry makes the decisions TcpConn makes on the event
 * loop — which server, the PROXY header, retries on another server while the client's
 * bytes can be replayed (the relay keeps them until the server's first byte), the
 * connectTimeout, drain, expiry — from the relay's records, without a net.Socket.
 */
export class NativeTcpConn extends TcpConnBase implements Relayed {
  readonly relayId: number;
  readonly tuple: ConnectionTuple;
  readonly #relay: RelayHost;
  #attempt = 0;
  #localAddress: string | undefined;
  #localTries = 0;
  #connected = false;
  #answered = false;
  #timeoutAsked = false;
  #clientEnded = false;
  #serverEnded = false;
  #reset = false;
  #closing = false;
  #expired = false;
  #closed = false;

  constructor(rt: Runtime, service: TcpService, relay: RelayHost, relayId: number, tuple: ConnectionTuple) {
    super(rt, service, tuple, undefined);
    this.#relay = relay;
    this.relayId = relayId;
    this.tuple = tuple;
    relay.track(this);
  }

  /** The relay picked `dest` from the plan at accept and is connecting to it (the first attempt). */
  connectingTo(dest: Dest): void {
    this.bindDest(dest);
    this.#localAddress = undefined;
    this.#attempt = 1;
  }

  /** Asks the relay to connect to `dest` (first attempt or a retry). */
  connect(dest: Dest): void {
    this.setState('SYN_SENT');
    // Each attempt gets its own connectTimeout (a retry is already in SYN_SENT, so the state
    // change above does not restart the idle clock).
    this.lastActive = this.rt.clock.now();
    this.bindDest(dest);
    const localAddress = this.service.localAddressFor(dest);
    this.#localAddress = localAddress;
    this.#connected = false;
    this.#timeoutAsked = false;
    const header = this.service.encoder?.({
      protocol: 'tcp',
      clientAddress: this.clientAddress,
      clientPort: this.clientPort,
      virtualAddress: this.tuple.destinationAddress,
      virtualPort: this.tuple.destinationPort,
      id: this.id,
    });
    const attempt = ++this.#attempt;
    const err = this.#relay.native.connect(
      this.relayId,
      attempt,
      dest.address,
      dest.port,
      localAddress,
      header,
    );
    if (err !== 0) this.onServerFailed(attempt, 'EINVAL', true);
  }

  localEndpoint(): string | undefined {
    if (!this.live || !this.#connected) return undefined;
    const local = this.#relay.native.localOf(this.relayId);
    return local ? endpoint(local[0], local[1]) : undefined;
  }

  onTimeout(): void {
    if (this.state === 'SYN_SENT' && this.live && !this.#connected && this.dest) {
      // The relay fails the attempt (unless it connected meanwhile) and reports it.
      if (!this.#timeoutAsked) {
        this.#timeoutAsked = true;
        this.#relay.native.failServer(this.relayId, this.#attempt, ETIMEDOUT);
      }
      return;
    }
    this.#expire();
  }

  close(cause: CloseCause): void {
    if (!this.live) {
      if (cause === 'stop') this.remove();
      return;
    }
    if (cause === 'drain') {
      if (this.#closing) return;
      this.#closing = true;
      this.setState('LAST_ACK');
      this.#relay.close(this.relayId, CloseMode.FIN);
      return;
    }
    if (cause === 'stop') this.#expired = true;
    this.#reset = true;
    this.#relay.close(this.relayId, CloseMode.RESET);
  }

  #expire(): void {
    if (!this.live) {
      this.remove();
      return;
    }
    this.#expired = true;
    this.#relay.close(this.relayId, CloseMode.ABORT);
  }

  onConnected(attempt: number): void {
    if (attempt !== this.#attempt || !this.live) return;
    this.#connected = true;
    this.#localTries = 0;
    this.setState(this.#clientEnded ? 'CLOSE_WAIT' : 'ESTABLISHED');
    this.opened();
  }

  onServerFailed(attempt: number, code: string, replayable: boolean): void {
    if (attempt !== this.#attempt || !this.live) return;
    const dest = this.dest!;
    const service = this.service.name;
    this.#connected = false;
    const timedOut = this.#timeoutAsked && code === 'ETIMEDOUT';
    const err = timedOut ? undefined : Object.assign(new Error(code), { code });
    if (!timedOut && this.#localAddress && code === 'EADDRNOTAVAIL') {
      // The FULLNAT local address is not (or no longer) on this host: try the next one.
      this.rt.localError(
        service,
        'EADDRNOTAVAIL',
        { address: this.#localAddress },
        `service ${service}: local address ${this.#localAddress} is not usable on this host (EADDRNOTAVAIL)`,
      );
      if (++this.#localTries < this.service.localAddressCount(dest)) {
        this.connect(dest);
        return;
      }
    }
    const reason: ConnectionFailureReason = timedOut ? 'timeout' : failureReason(err);
    if (this.retryElsewhere(reason, err, replayable)) return;
    this.#reset = true;
    this.#relay.close(this.relayId, CloseMode.RESET);
  }

  onRelayRecord(
    kind: number,
    arg: number,
    inBytes: number,
    outBytes: number,
    inReads: number,
    outReads: number,
  ): void {
    const st = this.dest?.stats;
    if (inReads || outReads) {
      if (st) {
        st.inBytes += inBytes;
        st.outBytes += outBytes;
        st.inPkts += inReads;
        st.outPkts += outReads;
      }
      this.lastActive = this.rt.clock.now();
    }
    switch (kind) {
      case RecordKind.CLIENT_EOF:
        this.#clientEnded = true;
        if (!this.#closing && this.state !== 'SYN_SENT')
          this.setState(this.#serverEnded ? 'LAST_ACK' : 'CLOSE_WAIT');
        return;
      case RecordKind.SERVER_EOF:
        this.#serverEnded = true;
        if (!this.#closing) this.setState(this.#clientEnded ? 'LAST_ACK' : 'FIN_WAIT');
        return;
      case RecordKind.ANSWERED:
        if (this.#answered) return;
        this.#answered = true;
        if (this.dest && this.rt.listens('health:signal')) {
          const server = this.dest.key;
          this.rt.emit('health:signal', () => ({
            service: this.service.name,
            server,
            ok: true,
            reason: 'answered',
          }));
        }
        return;
      case RecordKind.CLOSED: {
        if (closedHow(arg).reset) this.#reset = true;
        this.#finished();
        return;
      }
    }
  }

  #finished(): void {
    if (this.#closed || !this.live) return;
    this.#closed = true;
    this.finished({ answered: this.#answered, reset: this.#reset, expired: this.#expired });
  }
}
