import { createSocket, type Socket } from 'node:dgram';
import type { ConnectionFailureReason, ConnectionTuple } from '@fulcrum/kernel';
import { Conn, type CloseCause } from './conn.js';
import type { Dest } from './dest.js';
import { endpoint, errorCode, failureReason } from './net-util.js';
import type { Runtime } from './runtime.js';
import type { UdpService } from './udp-service.js';

/**
 * One client's UDP flow: ONEWAY until the server first answers, then ESTABLISHED. A session
 * that expires in ONEWAY, or whose server answers with ICMP port unreachable
 * (ECONNREFUSED on the connected socket), is a passive-health failure; in ONEWAY the
 * datagrams the server never answered are resent to another server while retries last.
 */
export class UdpSession extends Conn {
  readonly protocol = 'udp';
  readonly tuple: ConnectionTuple;
  readonly key: string;
  /** The client's address exactly as the VIP socket reported it (replies go there). */
  readonly replyAddress: string;
  upstream: Socket | undefined;
  #ready = false;
  #queue: Buffer[] = [];
  #unanswered: Buffer[] | null;
  #unansweredBytes = 0;
  #opened = false;
  #openedAt = 0;
  #localTries = 0;

  constructor(rt: Runtime, service: UdpService, tuple: ConnectionTuple, key: string, replyAddress: string) {
    super(
      rt,
      service,
      tuple.sourceAddress,
      tuple.sourcePort,
      endpoint(tuple.sourceAddress, tuple.sourcePort),
      'ONEWAY',
    );
    this.tuple = tuple;
    this.key = key;
    this.replyAddress = replyAddress;
    this.#unanswered = rt.options.retries > 0 && rt.options.retryBufferBytes > 0 ? [] : null;
  }

  get #service(): UdpService {
    return this.service as UdpService;
  }

  connect(dest: Dest): void {
    this.setState('ONEWAY');
    this.bindDest(dest);
    const localAddress = this.service.localAddressFor(dest);
    const sock = createSocket(dest.family === 6 ? 'udp6' : 'udp4');
    this.upstream = sock;
    this.#ready = false;
    sock.on('message', (msg) => this.#fromServer(sock, msg));
    sock.on('error', (err) => this.#onError(sock, err, localAddress));
    const go = () =>
      sock.connect(dest.port, dest.address, () => {
        if (sock !== this.upstream) return;
        this.#ready = true;
        this.#localTries = 0;
        const queued = this.#queue;
        this.#queue = [];
        for (const m of queued) sock.send(m);
        if (!this.#opened) {
          this.#opened = true;
          this.#openedAt = this.rt.clock.now();
          dest.stats.conns++;
          this.rt.emit('connection:opened', () => ({
            service: this.service.name,
            server: dest.key,
            client: this.client,
          }));
        }
      });
    if (localAddress) sock.bind({ address: localAddress, port: 0 }, go);
    else go();
  }

  fromClient(msg: Buffer): void {
    this.lastActive = this.rt.clock.now();
    const st = this.dest!.stats;
    st.inBytes += msg.length;
    st.inPkts++;
    const encoder = this.service.encoder;
    const out = encoder
      ? Buffer.concat([
          encoder({
            protocol: 'udp',
            clientAddress: this.clientAddress,
            clientPort: this.clientPort,
            virtualAddress: this.tuple.destinationAddress,
            virtualPort: this.tuple.destinationPort,
            id: this.id,
          }),
          msg,
        ])
      : msg;
    if (this.#unanswered) {
      this.#unanswered.push(out);
      this.#unansweredBytes += out.length;
      if (this.#unansweredBytes > this.rt.options.retryBufferBytes) this.#unanswered = null;
    }
    if (this.#ready) this.upstream!.send(out);
    else this.#queue.push(out);
  }

  #fromServer(sock: Socket, msg: Buffer): void {
    if (sock !== this.upstream) return;
    this.lastActive = this.rt.clock.now();
    const st = this.dest!.stats;
    st.outBytes += msg.length;
    st.outPkts++;
    if (this.state === 'ONEWAY') {
      this.setState('ESTABLISHED');
      this.#unanswered = null;
      const server = this.dest!.key;
      this.rt.emit('health:signal', () => ({
        service: this.service.name,
        server,
        ok: true,
        reason: 'answered',
      }));
    }
    this.#service.reply(msg, this.replyAddress, this.clientPort);
  }

  #onError(sock: Socket, err: Error, localAddress: string | undefined): void {
    if (sock !== this.upstream) return;
    const code = errorCode(err);
    if (localAddress && code === 'EADDRNOTAVAIL') {
      this.rt.localError(
        this.service.name,
        code,
        { address: localAddress },
        `service ${this.service.name}: local address ${localAddress} is not usable on this host (EADDRNOTAVAIL)`,
      );
      const dest = this.dest!;
      if (++this.#localTries < this.service.localAddressCount(dest)) {
        this.#closeUpstream();
        this.connect(dest);
        return;
      }
    }
    this.#fail(failureReason(err), err);
  }

  #fail(reason: ConnectionFailureReason, err: Error | undefined): void {
    const next = this.failedOver(reason, err, this.live && reason !== 'oneway-expired');
    this.#closeUpstream();
    if (!next) {
      this.#end();
      return;
    }
    // What the failed server never answered goes to the next one (when it was kept).
    this.#queue = this.state === 'ONEWAY' && this.#unanswered ? [...this.#unanswered] : [];
    this.connect(next);
  }

  localEndpoint(): string | undefined {
    if (!this.#ready || !this.upstream) return undefined;
    const a = this.upstream.address();
    return endpoint(a.address, a.port);
  }

  timeoutMs(): number {
    return this.state === 'ONEWAY' ? this.rt.options.timeouts.udpOneway : this.rt.options.timeouts.udp;
  }

  onTimeout(): void {
    if (this.state === 'ONEWAY' && this.live) {
      this.#fail('oneway-expired', undefined);
      return;
    }
    this.#end();
  }

  close(_cause: CloseCause): void {
    this.#end();
  }

  #closeUpstream(): void {
    const s = this.upstream;
    this.upstream = undefined;
    this.#ready = false;
    if (!s) return;
    try {
      s.close();
    } catch {
      // already closed
    }
  }

  /** UDP has nothing to close on the wire: the session is forgotten. */
  #end(): void {
    if (!this.live) return;
    this.#closeUpstream();
    this.released();
    const svc = this.#service;
    if (svc.sessions.get(this.key) === this) svc.sessions.delete(this.key);
    if (this.#opened && this.dest) {
      const server = this.dest.key;
      const durationMs = this.rt.clock.now() - this.#openedAt;
      this.rt.emit('connection:closed', () => ({
        service: this.service.name,
        server,
        client: this.client,
        durationMs,
      }));
    }
    this.#queue = [];
    this.#unanswered = null;
    this.remove();
  }
}
