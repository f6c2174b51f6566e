import { BlockList, isIPv4, isIPv6, type Server, type Socket } from 'node:net';
import { ProxyProtocolError, ProxyProtocolErrorCodes as Codes } from './errors.js';
import { ProxyProtocolParser, type ParserOptions } from './parser.js';
import type { ProxyHeader } from './types.js';
import { isInetEndpoint } from './types.js';

export interface AcceptProxyProtocolOptions extends ParserOptions {
  /**
   * Peers whose headers are believed: addresses or CIDR blocks (`10.0.0.0/8`, `fd00::/8`).
   * Absent: every peer (only for a port that nothing but your proxies can reach).
   */
  trustedProxies?: readonly string[];
  /**
   * A connection from a peer not in `trustedProxies`: `reject` (default) closes it;
   * `keep-peer-address` still reads and strips its header but keeps the real peer address.
   */
  onUntrusted?: 'reject' | 'keep-peer-address';
  /** Close a connection whose header is not complete by then; default 5000 (the specification asks for at least 3 s). */
  headerTimeoutMs?: number;
}

/** Emitted on the server when a connection is refused: `server.on(PROXY_PROTOCOL_ERROR, (err, socket) => …)`. */
export const PROXY_PROTOCOL_ERROR = 'proxyProtocolError';

const headers = new WeakMap<Socket, ProxyHeader>();
/** Sockets whose header was believed (so a TLS socket wrapping one inherits the addresses). */
const believed = new WeakSet<Socket>();

/** The PROXY header a wrapped server read on this socket (with TLVs: unique id, SSL…). */
export function proxyHeaderOf(socket: Socket): ProxyHeader | undefined {
  return headers.get(socket);
}

function trustList(entries: readonly string[]): (address: string | undefined) => boolean {
  const list = new BlockList();
  for (const e of entries) {
    const [addr, bits] = e.split('/') as [string, string | undefined];
    const type = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
    if (!type || (bits !== undefined && !/^\d{1,3}$/.test(bits))) {
      throw new ProxyProtocolError(
        Codes.UNTRUSTED,
        `trustedProxies: "${e}" is not an address or CIDR block`,
        { entry: e },
      );
    }
    if (bits === undefined) list.addAddress(addr, type);
    else list.addSubnet(addr, Number(bits), type);
  }
  return (address) => {
    if (!address) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped && list.check(mapped[1]!, 'ipv4')) return true;
    return list.check(address, isIPv4(address) ? 'ipv4' : 'ipv6');
  };
}

/** Makes `socket.remoteAddress/remotePort/remoteFamily` report the client the header names. */
function applyHeader(socket: Socket, header: ProxyHeader): void {
  headers.set(socket, header);
  if (header.command !== 'proxy' || !isInetEndpoint(header.source)) return;
  const family = header.family === 'inet' ? 'IPv4' : 'IPv6';
  for (const [key, value] of [
    ['remoteAddress', header.source.address],
    ['remotePort', header.source.port],
    ['remoteFamily', family],
  ] as const) {
    Object.defineProperty(socket, key, { value, configurable: true, enumerable: true });
  }
}

/**
 * Makes a `net.Server` (or `http.Server`, `https.Server`, `tls.Server`) read a PROXY header
 * on each connection before anything else sees it: the server's `connection` listeners get
 * the socket once the header is in, with `remoteAddress`/`remotePort` of the client it names
 * and the bytes after it untouched (for TLS servers, the secure socket reports them too). Connections with a bad, missing or late header are closed
 * and reported with the `proxyProtocolError` event. Returns the server.
 */
export function acceptProxyProtocol<S extends Server>(
  server: S,
  options: AcceptProxyProtocolOptions = {},
): S {
  const trusted = options.trustedProxies ? trustList(options.trustedProxies) : () => true;
  const timeoutMs = options.headerTimeoutMs ?? 5000;
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;

  const refuse = (socket: Socket, err: ProxyProtocolError) => {
    socket.destroy();
    if (server.listenerCount(PROXY_PROTOCOL_ERROR) > 0) emit(PROXY_PROTOCOL_ERROR, err, socket);
  };

  const accept = (socket: Socket) => {
    const peer = socket.remoteAddress;
    const trustedPeer = trusted(peer);
    if (!trustedPeer && (options.onUntrusted ?? 'reject') === 'reject') {
      refuse(
        socket,
        new ProxyProtocolError(Codes.UNTRUSTED, `refused a connection from ${peer}: not in trustedProxies`, {
          peer,
        }),
      );
      return;
    }
    const parser = new ProxyProtocolParser(options);
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onEnd);
      socket.off('error', onError);
      socket.off('close', cleanup);
    };
    const fail = (err: ProxyProtocolError) => {
      cleanup();
      refuse(socket, err);
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        let r;
        try {
          r = parser.push(chunk);
        } catch (e) {
          fail(e as ProxyProtocolError);
          return;
        }
        if (!r.done) continue;
        cleanup();
        if (r.rest.length) socket.unshift(r.rest);
        if (trustedPeer) {
          believed.add(socket);
          applyHeader(socket, r.header);
        } else headers.set(socket, r.header);
        emit('connection', socket);
        return;
      }
    };
    const onEnd = () => {
      if (parser.buffered === 0) {
        cleanup();
        socket.destroy();
        return;
      }
      try {
        parser.end();
      } catch (e) {
        fail(e as ProxyProtocolError);
      }
    };
    const onError = () => {
      cleanup();
      socket.destroy();
    };
    const timer = setTimeout(
      () =>
        fail(
          new ProxyProtocolError(
            Codes.TIMEOUT,
            `no complete PROXY header from ${peer} within ${timeoutMs} ms`,
            { peer, received: parser.buffered, timeoutMs },
          ),
        ),
      timeoutMs,
    );
    socket.on('readable', onReadable);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', cleanup);
  };

  (server as { emit: (event: string | symbol, ...args: unknown[]) => boolean }).emit = (event, ...args) => {
    if (event === 'connection') {
      accept(args[0] as Socket);
      return true;
    }
    if (event === 'secureConnection') {
      // A TLS server wraps the TCP socket that carried the header in a new TLSSocket, which
      // answers remoteAddress from the kernel again: give it the header too. Node keeps the
      // wrapped socket as `_parent` (tls_wrap), the only link from one to the other.
      const secure = args[0] as Socket & { _parent?: Socket };
      const header = secure._parent ? headers.get(secure._parent) : undefined;
      if (header) {
        if (believed.has(secure._parent!)) applyHeader(secure, header);
        else headers.set(secure, header);
      }
    }
    return emit(event, ...args);
  };
  return server;
}
