import { createServer, type Server, type Socket } from 'node:net';
import {
  DataplaneError,
  formatEndpoint,
  HASH_FIELDS,
  type Endpoint,
  type ServiceSnapshot,
} from '@fulcrum/kernel';
import type { Dest } from './dest.js';
import { errorCode, plainAddress } from './net-util.js';
import type { HeaderEncoder } from './proxy-header.js';
import { NativeTcpConn } from './native-tcp-conn.js';
import { CloseMode, NativePlanKind, PICK_SCALE } from './native-relay.js';
import type { NativeAcceptor, PlanForRelay, PushedPlan, RelayHost } from './relay-host.js';
import type { Runtime } from './runtime.js';
import { TcpConn } from './tcp-conn.js';
import { VirtualService, type Listener } from './virtual-service.js';

export const listenKey = (protocol: string, listen: Endpoint) => `${protocol} ${formatEndpoint(listen)}`;

/**
 * A listening TCP socket. It belongs to a service but can be handed to the service that
 * replaces it (a rename, or a change the kernel delivers as remove + add) without closing
 * the port, so such a change refuses no client.
 */
export class TcpListener implements NativeAcceptor {
  readonly key: string;
  /** Node's listening socket, or undefined when the native relay's threads accept (relayAccept). */
  readonly server: Server | undefined;
  #native: { relay: RelayHost; id: number } | undefined;
  owner: TcpService;

  private constructor(key: string, server: Server | undefined, owner: TcpService) {
    this.key = key;
    this.server = server;
    this.owner = owner;
    if (!server) return;
    server.on('connection', (socket: Socket) => this.owner.accept(socket));
    // EMFILE/ENFILE on accept: libuv drops that one connection and keeps listening; an
    // unhandled 'error' here would crash the process instead.
    server.on('error', (err) => this.owner.acceptError(err));
  }

  /** Binds the VIP:port; rejects with a DataplaneError (EADDRINUSE, EADDRNOTAVAIL, EACCES…). */
  static open(listen: Endpoint, backlog: number, owner: TcpService): Promise<TcpListener> {
    const relay = owner.rt.relay;
    if (relay?.accepts) {
      const l = new TcpListener(listenKey('tcp', listen), undefined, owner);
      const id = relay.listen(listen.address, listen.port, backlog, l);
      if (typeof id === 'string') return Promise.reject(listenError(owner, listen, id, undefined));
      l.#native = { relay, id };
      return Promise.resolve(l);
    }
    const server = createServer({
      allowHalfOpen: true,
      pauseOnConnect: true,
      noDelay: owner.rt.options.noDelay,
    });
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.close();
        reject(listenError(owner, listen, err.code ?? err.message, err));
      };
      server.once('error', onError);
      server.listen({ host: listen.address, port: listen.port, backlog, exclusive: true }, () => {
        server.off('error', onError);
        resolve(new TcpListener(listenKey('tcp', listen), server, owner));
      });
    });
  }

  onAccept(
    relayId: number,
    clientAddress: string,
    clientPort: number,
    localAddress: string | undefined,
    plan: PushedPlan | undefined,
    index: number,
  ): void {
    this.owner.acceptNative(relayId, clientAddress, clientPort, localAddress, plan, index);
  }

  /** Whether the relay threads accept on this listener (and so may execute plans). */
  get native(): boolean {
    return this.#native !== undefined;
  }

  /** Whether the relay threads execute a plan for this listener now. */
  planPushed = false;

  /** The plan the relay threads execute for this listener's clients (none: TypeScript schedules). */
  pushPlan(plan: PlanForRelay | undefined): void {
    if (!this.#native) return;
    this.#native.relay.pushPlan(this.#native.id, this.owner, plan);
    this.planPushed = plan !== undefined;
  }

  /** Takes the next turn of the cursor the relay's picks move (a pushed sequence plan). */
  turn(): number {
    return this.#native!.relay.native.turn(this.#native!.id);
  }

  onAcceptError(code: string): void {
    this.owner.acceptError(Object.assign(new Error(code), { code }));
  }

  close(): void {
    if (this.#native) this.#native.relay.unlisten(this.#native.id);
    else this.server?.close();
  }
}

function listenError(owner: TcpService, listen: Endpoint, code: string, cause: unknown): DataplaneError {
  return new DataplaneError(
    `service "${owner.name}": cannot listen on TCP ${formatEndpoint(listen)}: ${code}${hint(code)}`,
    {
      ...(cause === undefined ? {} : { cause }),
      details: { service: owner.name, listen: formatEndpoint(listen), errno: code },
    },
  );
}

export function hint(code: string | undefined): string {
  switch (code) {
    case 'EADDRINUSE':
      return ' (the address is already in use by another process or service)';
    case 'EADDRNOTAVAIL':
      return ' (the address is not configured on this host)';
    case 'EACCES':
      return ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    default:
      return '';
  }
}

/** A TCP virtual service: accepts clients on the VIP and relays each to a real server. */
export class TcpService extends VirtualService {
  #listener: TcpListener | undefined;
  readonly #wildcard: boolean;

  constructor(rt: Runtime, snapshot: ServiceSnapshot, encoder: HeaderEncoder | undefined) {
    super(rt, snapshot, encoder);
    this.#wildcard = snapshot.listen.address === '0.0.0.0' || snapshot.listen.address === '::';
  }

  listenKey(): string {
    return listenKey('tcp', this.snapshot.listen);
  }

  get listener(): TcpListener | undefined {
    return this.#listener;
  }

  async open(): Promise<void> {
    this.#listener = await TcpListener.open(this.snapshot.listen, this.rt.options.backlog, this);
    this.#pushPlan();
  }

  adopt(listener: Listener): void {
    const l = listener as TcpListener;
    l.owner = this;
    this.#listener = l;
    this.#pushPlan();
  }

  override update(snapshot: ServiceSnapshot): void {
    super.update(snapshot);
    // The base constructor updates before this class's fields exist: nothing to push then.
    if (#listener in this) this.#pushPlan();
  }

  #pushedVersion = -1;

  protected override sequenceTurn(): number | undefined {
    const l = this.#listener;
    return l?.planPushed ? l.turn() : undefined;
  }

  /**
   * Native accept: the relay threads execute the plan themselves — pick and connect at accept,
   * TypeScript told afterwards — whenever the plan alone decides: a sequence or a hash
   * plan, and no persistence, maxConnections, PROXY header or local addresses (those, and
   * least-connections, need the event loop's state, so TypeScript schedules each client).
   * Called whenever the plan, the servers or their availability may have changed.
   */
  #pushPlan(): void {
    const l = this.#listener;
    if (!l?.native) return;
    l.pushPlan(this.#planForRelay());
  }

  #planForRelay(): PlanForRelay | undefined {
    const s = this.snapshot;
    if (!this.rt.options.relayPlans) return undefined;
    if (this.retiring || this.persistence || this.encoder || s.maxConnections !== undefined) return undefined;
    if (s.localAddresses.length > 0 || this.byIndex.length >= PICK_SCALE) return undefined;
    const restart = this.#pushedVersion !== this.planVersion;
    this.#pushedVersion = this.planVersion;
    const plan = s.plan;
    switch (plan.kind) {
      case 'sequence':
        return {
          kind: NativePlanKind.SEQUENCE,
          entries: plan.sequence,
          fields: [],
          dests: this.byIndex,
          restart,
        };
      case 'hash':
        return {
          kind: NativePlanKind.HASH,
          entries: plan.table,
          fields: plan.fields.map((f) => HASH_FIELDS.indexOf(f)),
          dests: this.byIndex,
          restart,
        };
      default:
        return undefined;
    }
  }

  /** Established connections go on to their end, as IPVS keeps a deleted service's connections. */
  retire(keepListener: boolean): void {
    this.retiring = true;
    if (!keepListener) this.#listener?.close();
    this.#listener = undefined;
    this.persistence?.clear();
  }

  accept(client: Socket): void {
    const rt = this.rt;
    const remote = client.remoteAddress;
    if (this.retiring || rt.stopping || remote === undefined) {
      client.destroy();
      return;
    }
    if (this.#full()) {
      client.on('error', noop);
      client.resetAndDestroy();
      return;
    }
    const listen = this.snapshot.listen;
    const clientAddress = plainAddress(remote);
    const clientPort = client.remotePort ?? 0;
    const tuple = {
      sourceAddress: clientAddress,
      sourcePort: clientPort,
      // The VIP itself, unless the listener is a wildcard (a getsockname per connection saved).
      destinationAddress: this.#wildcard
        ? plainAddress(client.localAddress ?? listen.address)
        : listen.address,
      destinationPort: listen.port,
    };
    const dest = this.schedule(tuple, []);
    if (!dest) {
      this.#refusedNoServer();
      client.on('error', noop);
      client.resetAndDestroy();
      return;
    }
    const conn = new TcpConn(rt, this, client, tuple);
    this.live++;
    rt.table.add(conn);
    this.persist(conn, dest);
    conn.connect(dest);
  }

  /**
   * A client the native relay accepted (relayAccept): the same decisions as accept(), without
   * a net.Socket. With `plan` the relay executed that plan and is connecting to its server
   * `index` already.
   */
  acceptNative(
    relayId: number,
    clientAddress: string,
    clientPort: number,
    localAddress: string | undefined,
    plan?: PushedPlan,
    index = -1,
  ): void {
    const rt = this.rt;
    const relay = rt.relay!;
    if (this.retiring || rt.stopping) {
      relay.close(relayId, CloseMode.ABORT);
      return;
    }
    if (this.#full()) {
      relay.close(relayId, CloseMode.RESET);
      return;
    }
    const listen = this.snapshot.listen;
    const tuple = {
      sourceAddress: clientAddress,
      sourcePort: clientPort,
      destinationAddress: localAddress ?? listen.address,
      destinationPort: listen.port,
    };
    if (plan) {
      const dest = this.#picked(plan, index);
      if (!dest) {
        // Picked from the plan of a service this listener no longer belongs to, for a server
        // this one does not have: nothing to account it to.
        relay.close(relayId, CloseMode.ABORT);
        return;
      }
      const conn = new NativeTcpConn(rt, this, relay, relayId, tuple);
      this.live++;
      rt.table.add(conn);
      conn.connectingTo(dest);
      this.persist(conn, dest);
      return;
    }
    const dest = this.schedule(tuple, []);
    if (!dest) {
      this.#refusedNoServer();
      relay.close(relayId, CloseMode.RESET);
      return;
    }
    const conn = new NativeTcpConn(rt, this, relay, relayId, tuple);
    this.live++;
    rt.table.add(conn);
    this.persist(conn, dest);
    conn.connect(dest);
  }

  /** At maxConnections: counts and logs (once a while) the refusal the caller makes. */
  #full(): boolean {
    const max = this.snapshot.maxConnections;
    if (max === undefined || this.live < max) return false;
    this.rt.metrics.refused.inc({ service: this.name, reason: 'max-connections' });
    this.rt.warn(
      `max:${this.name}`,
      { event: 'connection_refused', service: this.name, reason: 'max-connections', maxConnections: max },
      `service ${this.name}: ${max} connections open (maxConnections), refusing new ones`,
    );
    return true;
  }

  /** No server can take the client: counts and logs (once a while) the refusal the caller makes. */
  #refusedNoServer(): void {
    this.rt.metrics.refused.inc({ service: this.name, reason: 'no-server' });
    this.rt.warn(
      `none:${this.name}`,
      { event: 'connection_refused', service: this.name, reason: 'no-server' },
      `service ${this.name}: no real server can take connections, refusing clients`,
    );
  }

  /**
   * The Dest of a server the relay picked. A plan pushed before the last change may name a
   * server that has left the service since (and been forgotten): it comes back as one that
   * left (index -1), kept until this connection ends, as IPVS keeps a removed server's
   * connections.
   */
  #picked(plan: PushedPlan, index: number): Dest | undefined {
    const d = plan.dests[index];
    if (!d) return undefined;
    const current = this.dests.get(d.key);
    if (current) return current;
    if (plan.owner !== this) return undefined;
    this.dests.set(d.key, d);
    return d;
  }

  acceptError(err: Error): void {
    const code = errorCode(err);
    this.rt.metrics.acceptErrors.inc({ service: this.name, code });
    this.rt.warn(
      `accept:${this.name}:${code}`,
      { event: 'accept_error', service: this.name, code },
      `service ${this.name}: accept failed with ${code}${code === 'EMFILE' || code === 'ENFILE' ? ' (out of file descriptors: raise `ulimit -n`); that client was dropped, others are served' : ''}`,
    );
  }
}

const noop = () => {};
