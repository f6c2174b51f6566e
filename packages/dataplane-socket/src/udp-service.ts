import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { DataplaneError, formatEndpoint, type Endpoint, type ServiceSnapshot } from '@fulcrum/kernel';
import { errorCode, plainAddress } from './net-util.js';
import type { HeaderEncoder } from './proxy-header.js';
import type { Runtime } from './runtime.js';
import { hint, listenKey } from './tcp-service.js';
import { UdpSession } from './udp-session.js';
import { VirtualService, type Listener } from './virtual-service.js';

/** The UDP socket bound to the VIP: it receives every client datagram and sends every reply. */
export class UdpListener implements Listener {
  readonly key: string;
  readonly socket: Socket;
  owner: UdpService;

  private constructor(key: string, socket: Socket, owner: UdpService) {
    this.key = key;
    this.socket = socket;
    this.owner = owner;
    socket.on('message', (msg, rinfo) => this.owner.onDatagram(msg, rinfo));
    socket.on('error', (err) => this.owner.socketError(err));
  }

  static open(listen: Endpoint, owner: UdpService): Promise<UdpListener> {
    const socket = createSocket({ type: listen.family === 6 ? 'udp6' : 'udp4' });
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        socket.close();
        reject(
          new DataplaneError(
            `service "${owner.name}": cannot listen on UDP ${formatEndpoint(listen)}: ${err.code ?? err.message}${hint(err.code)}`,
            { cause: err, details: { service: owner.name, listen: formatEndpoint(listen), errno: err.code } },
          ),
        );
      };
      socket.once('error', onError);
      socket.bind({ address: listen.address, port: listen.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve(new UdpListener(listenKey('udp', listen), socket, owner));
      });
    });
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

/**
 * A UDP virtual service: a session per client address and port, each with a socket of its
 * own toward the chosen server (FULLNAT), replies sent back from the VIP socket.
 */
export class UdpService extends VirtualService {
  readonly sessions = new Map<string, UdpSession>();
  #listener: UdpListener | undefined;

  constructor(rt: Runtime, snapshot: ServiceSnapshot, encoder: HeaderEncoder | undefined) {
    super(rt, snapshot, encoder);
  }

  listenKey(): string {
    return listenKey('udp', this.snapshot.listen);
  }

  get listener(): UdpListener | undefined {
    return this.#listener;
  }

  async open(): Promise<void> {
    this.#listener = await UdpListener.open(this.snapshot.listen, this);
  }

  adopt(listener: Listener): void {
    const l = listener as UdpListener;
    l.owner = this;
    this.#listener = l;
  }

  /** Sessions cannot outlive the VIP socket their replies leave from: they end with the service. */
  retire(keepListener: boolean): void {
    this.retiring = true;
    if (!keepListener) this.#listener?.close();
    this.#listener = undefined;
    this.persistence?.clear();
    this.closeAll();
  }

  onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const key = `${rinfo.address}|${rinfo.port}`;
    const session = this.sessions.get(key);
    if (session) {
      session.fromClient(msg);
      return;
    }
    const rt = this.rt;
    if (this.retiring || rt.stopping) return;
    const max = this.snapshot.maxConnections;
    if (max !== undefined && this.live >= max) {
      rt.metrics.refused.inc({ service: this.name, reason: 'max-connections' });
      rt.warn(
        `max:${this.name}`,
        { event: 'connection_refused', service: this.name, reason: 'max-connections', maxConnections: max },
        `service ${this.name}: ${max} sessions open (maxConnections), dropping datagrams of new clients`,
      );
      return;
    }
    const listen = this.snapshot.listen;
    const tuple = {
      sourceAddress: plainAddress(rinfo.address),
      sourcePort: rinfo.port,
      destinationAddress: listen.address,
      destinationPort: listen.port,
    };
    const dest = this.schedule(tuple, []);
    if (!dest) {
      rt.metrics.refused.inc({ service: this.name, reason: 'no-server' });
      rt.warn(
        `none:${this.name}`,
        { event: 'connection_refused', service: this.name, reason: 'no-server' },
        `service ${this.name}: no real server can take sessions, dropping datagrams`,
      );
      return;
    }
    const s = new UdpSession(rt, this, tuple, key, rinfo.address);
    this.sessions.set(key, s);
    this.live++;
    rt.table.add(s);
    this.persist(s, dest);
    s.connect(dest);
    s.fromClient(msg);
  }

  /** A reply from a server to its client, sent from the VIP socket (errors surface on the socket). */
  reply(msg: Buffer, address: string, port: number): void {
    const l = this.#listener;
    if (!l) return;
    try {
      l.socket.send(msg, port, address);
    } catch (e) {
      this.socketError(e as Error);
    }
  }

  socketError(err: Error): void {
    const code = errorCode(err);
    this.rt.metrics.acceptErrors.inc({ service: this.name, code });
    this.rt.warn(
      `udp:${this.name}:${code}`,
      { event: 'socket_error', service: this.name, code },
      `service ${this.name}: UDP socket error ${code}`,
    );
  }
}
