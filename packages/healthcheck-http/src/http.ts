import { isIP, connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { defineActiveCheck, errorCode, type ActiveOptions, type Probe } from '@fulcrum/healthcheck-active';
import { ResponseReader, type ResponseExpectations } from './response.js';

export interface HttpOptions extends ActiveOptions {
  method: string;
  path: string;
  /** Host header (keepalived `virtualhost`); default the probed address and port. */
  host?: string;
  /** Accepted status codes: `200`, or ranges `"200-299"` (keepalived `status_code`). */
  status: (number | string)[];
  bodyRegex?: string;
  /** MD5 of the body as keepalived's `genhash` prints it (keepalived `digest`). */
  digest?: string;
  maxBodySize: number;
  /** SSL_GET. */
  tls: boolean;
  /** TLS server name; default `host` when it is a name. */
  sni?: string;
  /** Verify the server's certificate chain and name. keepalived does not; off by default. */
  verify: boolean;
  /** PEM certificates to trust when verifying, instead of Node's bundled CAs. */
  ca?: string;
}

const MAX_HEAD_BYTES = 16 * 1024;

export function parseStatusRanges(list: readonly (number | string)[]): [number, number][] {
  return list.map((s) => {
    const [lo, hi = lo] = String(s).split('-').map(Number) as [number, number?];
    return [lo, hi];
  });
}

const authority = (address: string, port: number, tls: boolean) => {
  const host = isIP(address) === 6 ? `[${address}]` : address;
  return port === (tls ? 443 : 80) ? host : `${host}:${port}`;
};

/** A probe that sends one HTTP/1.0 request, as keepalived's HTTP_GET/SSL_GET do, and reads a bounded answer. */
export function httpProbe(options: HttpOptions): Probe {
  const expect: ResponseExpectations = {
    status: parseStatusRanges(options.status),
    ...(options.bodyRegex !== undefined ? { bodyRegex: new RegExp(options.bodyRegex) } : {}),
    ...(options.digest !== undefined ? { digest: options.digest.toLowerCase() } : {}),
    maxHeadBytes: MAX_HEAD_BYTES,
    maxBodyBytes: options.maxBodySize,
    head: options.method === 'HEAD',
  };
  const hostName = options.host?.replace(/:\d+$/, '');
  const servername = options.sni ?? (hostName && isIP(hostName) === 0 ? hostName : undefined);

  return (target, signal) =>
    new Promise((resolve) => {
      const host = options.host ?? authority(target.connectAddress, target.connectPort, options.tls);
      const request =
        `${options.method} ${options.path} HTTP/1.0\r\n` +
        `Host: ${host}\r\nUser-Agent: Fulcrum-healthcheck\r\nConnection: close\r\n\r\n`;
      const base = {
        host: target.connectAddress,
        port: target.connectPort,
        ...(target.bindTo ? { localAddress: target.bindTo } : {}),
      };
      let socket: Socket;
      if (options.tls) {
        socket = tlsConnect({
          ...base,
          ...(servername ? { servername } : {}),
          rejectUnauthorized: options.verify,
          ...(options.ca ? { ca: options.ca } : {}),
          ...(options.verify ? {} : { checkServerIdentity: () => undefined }),
        });
      } else socket = tcpConnect(base);

      const reader = new ResponseReader(expect);
      let settled = false;
      const done = (result: { ok: boolean; reason: string; code?: string }) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        socket.removeAllListeners('data');
        socket.on('error', () => {});
        socket.destroy();
        resolve(result);
      };
      const onAbort = () => done({ ok: false, reason: 'request aborted', code: 'timeout' });
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      socket.once(options.tls ? 'secureConnect' : 'connect', () => socket.write(request));
      socket.on('data', (chunk: Buffer) => {
        const r = reader.push(chunk);
        if (r) done(r);
      });
      const ended = () => settled || done(reader.end());
      socket.once('end', ended);
      socket.once('close', ended);
      socket.once('error', (e) => done({ ok: false, reason: e.message, code: errorCode(e) }));
    });
}

const statusItem = {
  oneOf: [
    { type: 'integer', minimum: 100, maximum: 599 },
    { type: 'string', pattern: '^[1-5][0-9]{2}(-[1-5][0-9]{2})?$' },
  ],
};

export const http = defineActiveCheck<HttpOptions>({
  name: 'http',
  kernel: '^0.1.0',
  description: 'keepalived HTTP_GET / SSL_GET: status, body regex, genhash digest',
  properties: {
    method: { type: 'string', pattern: '^[A-Z]+$', default: 'GET' },
    path: { type: 'string', pattern: '^/[^\\s]*$', default: '/' },
    host: { type: 'string', minLength: 1, pattern: '^[^\\s]+$', description: 'keepalived virtualhost' },
    status: { type: 'array', items: statusItem, minItems: 1, default: ['200-299'] },
    bodyRegex: { type: 'string' },
    digest: { type: 'string', pattern: '^[0-9a-fA-F]{32}$', description: 'genhash output' },
    maxBodySize: { type: 'integer', minimum: 0, default: 1024 * 1024 },
    tls: { type: 'boolean', default: false, description: 'SSL_GET' },
    sni: { type: 'string', minLength: 1 },
    verify: { type: 'boolean', default: false },
    ca: { type: 'string', minLength: 1 },
  },
  probe: (_ctx, options) => httpProbe(options),
});
