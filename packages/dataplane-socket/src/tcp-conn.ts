import { connect, type Socket } from 'node:net';
import type { ConnectionFailureReason, ConnectionTuple } from '@fulcrum/kernel';
import type { CloseCause } from './conn.js';
import type { Dest } from './dest.js';
import { closedHow, CloseMode, RecordKind } from './native-relay.js';
import { endpoint, errorCode, failureReason, finishSocket, resetSocket } from './net-util.js';
import type { Relayed } from './relay-host.js';
import type { Runtime } from './runtime.js';
import { TcpConnBase } from './tcp-conn-base.js';
import type { TcpService } from './tcp-service.js';

/** Client bytes read ahead while the server connection is being opened, without a replay buffer. */
export const EARLY_BYTES = 16 * 1024;

/** The libuv handle of a net.Socket: its descriptor, and reads turned off before the relay takes it. */
interface StreamHandle {
  fd: number;
  reading: boolean;
  readStop(): number;
  readStart(): number;
}
const handleOf = (s: Socket): StreamHandle | undefined => {
  const h = (s as unknown as { _handle?: StreamHandle | null })._handle;
  return h && typeof h.fd === 'number' && h.fd >= 0 ? h : undefined;
};
const noop = () => {};

/**
 * One client connection relayed to a real server (FULLNAT: the server sees the balancer's
 * address). Both sockets allow half-open, so a FIN travels one way while data still flows
 * the other; a reset on one side resets the other; back-pressure pauses the side that
 * reads when the other cannot keep up.
 *
 * Until the server's first byte, what the client sent is kept (up to retryBufferBytes) so
 * that a server that refuses, resets or times out can be replaced by another one without
 * the client noticing.
 */
export class TcpConn extends TcpConnBase implements Relayed {
  get relayId(): number {
    return this.id;
  }
  /** Dropped when the connection is finished, so a TIME_WAIT entry does not keep sockets alive. */
  #client: Socket | undefined;
  readonly tuple: ConnectionTuple;
  server: Socket | undefined;
  #replay: Buffer[] | null;
  #replayBytes = 0;
  /** Client bytes read so far: a retry needs them all in the replay buffer, or none read. */
  #clientBytes = 0;
  /** Client bytes read while no server socket could take them (only without a replay buffer). */
  #pending: Buffer[] | undefined;
  #pendingBytes = 0;
  #connected = false;
  #answered = false;
  /** When the current server was last sent client bytes it has not answered (responseTimeout). */
  #waitingSince = 0;
  #clientEnded = false;
  #serverEnded = false;
  #clientClosed = false;
  #serverClosed = true;
  #reset = false;
  #closing = false;
  #expired = false;
  #localTries = 0;
  /** Handed over to the native relay: no sockets here any more, the relay reports instead. */
  #relayed = false;
  /** The local side toward the server, read before the sockets were handed over. */
  #local: string | undefined;

  constructor(rt: Runtime, service: TcpService, client: Socket, tuple: ConnectionTuple) {
    super(rt, service, tuple, endpoint(tuple.sourceAddress, tuple.sourcePort));
    this.#client = client;
    this.tuple = tuple;
    this.#replay = rt.options.retries > 0 && rt.options.retryBufferBytes > 0 ? [] : null;
    client.on('data', this.#onClientData);
    client.on('end', this.#onClientEnd);
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
    client.on('drain', this.#onClientDrain);
    // Read while connecting, so a client reset or FIN is seen at once; what arrives is held
    // (bounded: the client is paused past the limit) and written when the server is up.
    client.resume();
  }

  /** Opens the connection to `dest` (first attempt or a retry). */
  connect(dest: Dest): void {
    this.setState('SYN_SENT');
    // Each attempt gets its own connectTimeout (a retry is already in SYN_SENT, so the state
    // change above does not restart the idle clock).
    this.lastActive = this.rt.clock.now();
    this.bindDest(dest);
    const localAddress = this.service.localAddressFor(dest);
    const s = connect({
      host: dest.address,
      port: dest.port,
      allowHalfOpen: true,
      noDelay: this.rt.options.noDelay,
      ...(localAddress ? { localAddress } : {}),
    });
    this.server = s;
    this.#connected = false;
    this.#serverEnded = false;
    this.#serverClosed = false;
    this.#waitingSince = 0;
    s.on('connect', () => this.#onServerConnect(s));
    s.on('data', (chunk: Buffer) => this.#onServerData(s, chunk));
    s.on('end', () => this.#onServerEnd(s));
    s.on('error', (err) => this.#onServerError(s, err, localAddress));
    s.on('close', () => this.#onServerClose(s));
    s.on('drain', () => {
      if (s !== this.server) return;
      if (!this.#clientEnded) this.#c.resume();
      this.#tryHandOff();
    });
  }

  get #c(): Socket {
    return this.#client!;
  }

  localEndpoint(): string | undefined {
    if (this.#relayed) return this.live ? this.#local : undefined;
    const s = this.#connected ? this.server : undefined;
    return s?.localAddress ? endpoint(s.localAddress, s.localPort ?? 0) : undefined;
  }

  onTimeout(): void {
    switch (this.state) {
      case 'SYN_SENT':
        if (this.server && !this.#connected) this.#serverFailed(this.server, 'timeout', undefined);
        else this.#expire();
        return;
      case 'TIME_WAIT':
      case 'CLOSE':
        this.#expire();
        return;
      default:
        this.#expire();
    }
  }

  override tick(now: number): void {
    const limit = this.rt.options.responseTimeout;
    if (limit === undefined || this.#answered || this.#waitingSince === 0 || !this.server) return;
    if (now - this.#waitingSince >= limit) this.#serverFailed(this.server, 'timeout', undefined);
  }

  close(cause: CloseCause): void {
    if (!this.live) {
      if (cause === 'stop') this.remove();
      return;
    }
    const relay = this.#relayed ? this.rt.relay : undefined;
    if (cause === 'drain') {
      // Drain closes cleanly: a FIN to both sides once what is queued has been written.
      if (this.#closing) return;
      this.#closing = true;
      this.setState('LAST_ACK');
      if (relay) {
        relay.close(this.relayId, CloseMode.FIN);
        return;
      }
      finishSocket(this.#c);
      if (this.server) finishSocket(this.server);
      return;
    }
    if (cause === 'stop') this.#expired = true;
    this.#reset = true;
    if (relay) {
      relay.close(this.relayId, CloseMode.RESET);
      return;
    }
    resetSocket(this.#c);
    if (this.server) resetSocket(this.server);
  }

  /** The entry ends now: sockets closed if still open, and it leaves the table. */
  #expire(): void {
    if (!this.live) {
      this.remove();
      return;
    }
    this.#expired = true;
    if (this.#relayed) {
      this.rt.relay?.close(this.relayId, CloseMode.ABORT);
      return;
    }
    this.#c.destroy();
    this.server?.destroy();
  }

  // ---- client side ------------------------------------------------------------------------

  #onClientData = (chunk: Buffer): void => {
    const n = chunk.length;
    this.lastActive = this.rt.clock.now();
    const st = this.dest!.stats;
    st.inBytes += n;
    st.inPkts++;
    this.#clientBytes += n;
    const replay = this.#replay;
    if (replay) {
      replay.push(chunk);
      this.#replayBytes += n;
      // Only bytes already written may be dropped from the buffer; while connecting it is the
      // only copy, and the client is paused instead once it is full.
      if (this.#connected && this.#replayBytes > this.rt.options.retryBufferBytes) this.#replay = null;
    }
    if (this.#connected) {
      if (this.#waitingSince === 0 && !this.#answered) this.#waitingSince = this.lastActive;
      if (!this.server!.write(chunk)) this.#c.pause();
      else if (!this.#answered) this.#tryHandOff();
      return;
    }
    if (!replay) {
      (this.#pending ??= []).push(chunk);
      this.#pendingBytes += n;
    }
    if (
      (replay ? this.#replayBytes : this.#pendingBytes) >=
      Math.max(this.rt.options.retryBufferBytes, EARLY_BYTES)
    ) {
      this.#c.pause();
    }
  };

  #onClientEnd = (): void => {
    this.#clientEnded = true;
    if (this.#connected) this.server!.end();
    if (this.state !== 'SYN_SENT') this.setState(this.#serverEnded ? 'LAST_ACK' : 'CLOSE_WAIT');
  };

  #onClientError = (): void => {
    // A client reset (or a write to a client that is gone) resets the server side too.
    this.#reset = true;
    if (this.server) resetSocket(this.server);
  };

  #onClientDrain = (): void => {
    if (this.server && this.#connected && !this.#serverEnded) this.server.resume();
    this.#tryHandOff();
  };

  #onClientClose = (): void => {
    this.#clientClosed = true;
    const s = this.server;
    if (s && !s.destroyed) {
      // The client is gone before the server finished: nothing more can reach it.
      if (!this.#connected || this.#reset) resetSocket(s);
      else if (!this.#clientEnded && !this.#closing) s.destroy();
    }
    this.#maybeFinished();
  };

  // ---- server side ------------------------------------------------------------------------

  #onServerConnect(s: Socket): void {
    if (s !== this.server) return;
    this.#connected = true;
    this.#localTries = 0;
    this.setState(this.#clientEnded ? 'CLOSE_WAIT' : 'ESTABLISHED');
    const encoder = this.service.encoder;
    if (encoder) {
      s.write(
        encoder({
          protocol: 'tcp',
          clientAddress: this.clientAddress,
          clientPort: this.clientPort,
          virtualAddress: this.tuple.destinationAddress,
          virtualPort: this.tuple.destinationPort,
          id: this.id,
        }),
      );
    }
    const backlog = this.#replay ?? this.#pending ?? [];
    let flowing = true;
    for (const chunk of backlog) flowing = s.write(chunk);
    this.#pending = undefined;
    this.#pendingBytes = 0;
    if (this.#replayBytes > this.rt.options.retryBufferBytes) this.#replay = null;
    if (backlog.length) this.#waitingSince = this.rt.clock.now();
    if (this.#clientEnded) s.end();
    this.opened();
    if (flowing && !this.#clientEnded) this.#c.resume();
    this.#tryHandOff();
  }

  #onServerData(s: Socket, chunk: Buffer): void {
    if (s !== this.server) return;
    const n = chunk.length;
    this.lastActive = this.rt.clock.now();
    const st = this.dest!.stats;
    st.outBytes += n;
    st.outPkts++;
    if (!this.#answered) this.#serverAnswered();
    if (!this.#c.write(chunk)) s.pause();
    else this.#tryHandOff();
  }

  // ---- the native relay ---------------------------------------------------------------------

  /**
   * Hands both sockets to the native relay once nothing is left that needs them here: the
   * connection is ESTABLISHED, nothing is queued either way, and a retry can no longer
   * happen (the server answered, or the replay buffer is gone and no responseTimeout
   * watches it). Reads stop first, so libuv never touches the descriptors again; the relay
   * takes duplicates, and the net.Sockets are destroyed (closing libuv's copies).
   */
  #tryHandOff(): void {
    const relay = this.rt.relay;
    if (!relay || this.#relayed || !this.#connected || this.#closing || this.#reset) return;
    if (this.state !== 'ESTABLISHED' || this.#clientEnded || this.#serverEnded) return;
    if (!this.#answered && (this.#replay !== null || this.rt.options.responseTimeout !== undefined)) return;
    const c = this.#client;
    const s = this.server;
    if (!c || !s || c.destroyed || s.destroyed || c.writableEnded || s.writableEnded) return;
    if (c.writableLength || s.writableLength || c.readableLength || s.readableLength) return;
    const ch = handleOf(c);
    const sh = handleOf(s);
    if (!ch || !sh) return;
    const local = this.localEndpoint();
    const reading = [ch.reading, sh.reading];
    ch.readStop();
    sh.readStop();
    ch.reading = sh.reading = false;
    if (!relay.add(this, ch.fd, sh.fd, this.#answered)) {
      // Out of descriptors for the duplicates: this connection stays on the event loop.
      if ((ch.reading = reading[0]!)) ch.readStart();
      if ((sh.reading = reading[1]!)) sh.readStart();
      return;
    }
    this.#relayed = true;
    this.#local = local;
    c.off('data', this.#onClientData);
    c.off('end', this.#onClientEnd);
    c.off('error', this.#onClientError);
    c.off('close', this.#onClientClose);
    c.off('drain', this.#onClientDrain);
    this.server = undefined;
    this.#client = undefined;
    this.#replay = null;
    this.#pending = undefined;
    for (const sock of [c, s]) {
      sock.on('error', noop);
      sock.destroy();
    }
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
    if (st && (inReads || outReads)) {
      st.inBytes += inBytes;
      st.outBytes += outBytes;
      st.inPkts += inReads;
      st.outPkts += outReads;
      this.#clientBytes += inBytes;
      this.lastActive = this.rt.clock.now();
    }
    switch (kind) {
      case RecordKind.CLIENT_EOF:
        this.#clientEnded = true;
        if (!this.#closing) this.setState(this.#serverEnded ? 'LAST_ACK' : 'CLOSE_WAIT');
        return;
      case RecordKind.SERVER_EOF:
        this.#serverEnded = true;
        if (!this.#closing) this.setState(this.#clientEnded ? 'LAST_ACK' : 'FIN_WAIT');
        return;
      case RecordKind.ANSWERED:
        if (!this.#answered) this.#serverAnswered();
        return;
      case RecordKind.CLOSED: {
        const how = closedHow(arg);
        if (how.reset) this.#reset = true;
        if (how.side === 2 && how.code && !this.#answered) {
          // The server failed before its first byte, too late to replay: as on the event loop,
          // a failure for the server, and the client got a reset.
          const err = Object.assign(new Error(how.code), { code: how.code });
          const dest = this.dest!;
          const service = this.service.name;
          const reason = failureReason(err);
          this.rt.serverFailed(service, dest.key, reason, err);
          this.rt.emit('connection:failed', () => ({
            service,
            server: dest.key,
            client: this.client,
            reason,
            retried: false,
          }));
          this.rt.metrics.refused.inc({ service, reason: 'retries-exhausted' });
        }
        this.#clientClosed = true;
        this.#serverClosed = true;
        this.#maybeFinished();
        return;
      }
    }
  }

  #serverAnswered(): void {
    this.#answered = true;
    this.#replay = null;
    this.#waitingSince = 0;
    const server = this.dest!.key;
    this.rt.emit('health:signal', () => ({
      service: this.service.name,
      server,
      ok: true,
      reason: 'answered',
    }));
  }

  #onServerEnd(s: Socket): void {
    if (s !== this.server) return;
    this.#serverEnded = true;
    this.#c.end();
    this.setState(this.#clientEnded ? 'LAST_ACK' : 'FIN_WAIT');
  }

  #onServerError(s: Socket, err: Error, localAddress: string | undefined): void {
    if (s !== this.server) return;
    if (!this.#connected && localAddress && errorCode(err) === 'EADDRNOTAVAIL') {
      // The FULLNAT local address is not (or no longer) on this host: try the next one.
      this.rt.localError(
        this.service.name,
        'EADDRNOTAVAIL',
        { address: localAddress },
        `service ${this.service.name}: local address ${localAddress} is not usable on this host (EADDRNOTAVAIL)`,
      );
      const dest = this.dest!;
      if (++this.#localTries < this.service.localAddressCount(dest) && !this.#clientClosed) {
        this.connect(dest);
        return;
      }
    }
    if (!this.#answered) {
      this.#serverFailed(s, failureReason(err), err);
      return;
    }
    // After the server answered, its reset is the client's reset.
    this.#reset = true;
    resetSocket(this.#c);
  }

  #onServerClose(s: Socket): void {
    if (s !== this.server) return;
    this.#serverClosed = true;
    if (!this.#clientClosed && !this.#clientEnded && !this.#serverEnded && !this.#closing) {
      // Closed without a FIN reaching us (destroyed on our side): the client cannot go on.
      resetSocket(this.#c);
    }
    this.#maybeFinished();
  }

  /**
   * The server failed before sending a byte: a passive-health failure (unless the cause is
   * this host's), then another server if a retry is left and the client's bytes can still
   * be replayed; else the client gets a reset.
   */
  #serverFailed(s: Socket, reason: ConnectionFailureReason, err: Error | undefined): void {
    s.destroy();
    this.server = undefined;
    this.#serverClosed = true;
    this.#connected = false;
    const replayable = (this.#replay !== null || this.#clientBytes === 0) && !this.#clientClosed;
    if (this.retryElsewhere(reason, err, replayable)) return;
    this.#reset = true;
    resetSocket(this.#c);
    this.#maybeFinished();
  }

  #maybeFinished(): void {
    if (!this.#clientClosed || !this.#serverClosed || !this.live) return;
    this.#pending = undefined;
    this.#replay = null;
    this.#client = undefined;
    this.server = undefined;
    this.finished({ answered: this.#answered, reset: this.#reset, expired: this.#expired });
  }
}
