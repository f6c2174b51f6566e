import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  acceptProxyProtocol,
  encodeProxyHeader,
  PROXY_PROTOCOL_ERROR,
  proxyHeaderOf,
  type AcceptProxyProtocolOptions,
  type ProxyProtocolError,
} from '@fulcrum/proxy-protocol';

const servers: (Server | HttpServer)[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

interface Seen {
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  data: Buffer;
  socket: Socket;
}

async function echoServer(options: AcceptProxyProtocolOptions = {}, host = '127.0.0.1') {
  const seen: Promise<Seen>[] = [];
  const errors: ProxyProtocolError[] = [];
  const resolvers: ((s: Seen) => void)[] = [];
  const next = () => {
    const p = new Promise<Seen>((r) => resolvers.push(r));
    seen.push(p);
    return p;
  };
  const server = acceptProxyProtocol(
    createServer((socket) => {
      const got: Buffer[] = [];
      const info = {
        remoteAddress: socket.remoteAddress,
        remotePort: socket.remotePort,
        remoteFamily: socket.remoteFamily,
      };
      socket.on('data', (d) => got.push(d));
      socket.on('end', () => {
        resolvers.shift()?.({ ...info, data: Buffer.concat(got), socket });
        socket.end();
      });
    }),
    options,
  );
  server.on(PROXY_PROTOCOL_ERROR, (e: ProxyProtocolError) => errors.push(e));
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, host, r));
  return { port: (server.address() as AddressInfo).port, next, errors };
}

/** Connects, writes each part (pausing between), half-closes, resolves when the server closes. */
function client(
  port: number,
  parts: Buffer[],
  host = '127.0.0.1',
  pauseMs = 15,
): Promise<{ closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const s = connect(port, host, async () => {
      for (const p of parts) {
        if (s.destroyed) break;
        s.write(p);
        await new Promise((r) => setTimeout(r, pauseMs));
      }
      if (!s.destroyed) s.end();
    });
    s.on('error', (e: NodeJS.ErrnoException) =>
      e.code === 'ECONNRESET' || e.code === 'EPIPE' ? undefined : reject(e),
    );
    s.on('close', () => resolve({ closedAfterMs: Date.now() - started }));
    s.resume();
  });
}

const client4 = { address: '203.0.113.7', port: 51000 };
const vip4 = { address: '192.0.2.1', port: 443 };

describe('acceptProxyProtocol on a net.Server', () => {
  it('reports the header client as remoteAddress/remotePort and hands over the payload untouched', async () => {
    const srv = await echoServer();
    const header = encodeProxyHeader({
      version: 2,
      source: client4,
      destination: vip4,
      uniqueId: Buffer.from('u1'),
    });
    const seen = srv.next();
    await client(srv.port, [Buffer.concat([header, Buffer.from('hello')])]);
    const s = await seen;
    expect(s).toMatchObject({ remoteAddress: '203.0.113.7', remotePort: 51000, remoteFamily: 'IPv4' });
    expect(s.data.toString()).toBe('hello');
    expect(proxyHeaderOf(s.socket)?.uniqueId?.toString()).toBe('u1');
  });

  it('reads a header split across TCP segments (v1, IPv6 client)', async () => {
    const srv = await echoServer();
    const header = encodeProxyHeader({
      version: 1,
      source: { address: '2001:db8::42', port: 6000 },
      destination: { address: '2001:db8::1', port: 80 },
    });
    const seen = srv.next();
    await client(srv.port, [
      header.subarray(0, 3),
      header.subarray(3, 20),
      Buffer.concat([header.subarray(20), Buffer.from('ab')]),
      Buffer.from('cd'),
    ]);
    expect(await seen).toMatchObject({
      remoteAddress: '2001:db8::42',
      remotePort: 6000,
      remoteFamily: 'IPv6',
      data: Buffer.from('abcd'),
    });
  });

  it('keeps the real address for LOCAL (health checks)', async () => {
    const srv = await echoServer();
    const seen = srv.next();
    await client(srv.port, [
      Buffer.concat([encodeProxyHeader({ version: 2, command: 'local' }), Buffer.from('x')]),
    ]);
    const s = await seen;
    expect(s.remoteAddress).toBe('127.0.0.1');
    expect(proxyHeaderOf(s.socket)?.command).toBe('local');
  });

  it('closes a connection that sends "GET /" at once, with a coded error', async () => {
    const srv = await echoServer({ headerTimeoutMs: 5000 });
    const { closedAfterMs } = await client(
      srv.port,
      [Buffer.from('GET / HTTP/1.1\r\n\r\n')],
      '127.0.0.1',
      500,
    );
    expect(closedAfterMs).toBeLessThan(1000);
    expect(srv.errors.map((e) => e.code)).toEqual(['FULCRUM_PROXY_PROTOCOL_INVALID']);
  });

  it('closes a connection whose header does not complete in time', async () => {
    const srv = await echoServer({ headerTimeoutMs: 150 });
    const { closedAfterMs } = await client(srv.port, [Buffer.from('PROXY TCP4 ')], '127.0.0.1', 2000);
    expect(closedAfterMs).toBeGreaterThanOrEqual(140);
    expect(closedAfterMs).toBeLessThan(1500);
    expect(srv.errors.map((e) => e.code)).toEqual(['FULCRUM_PROXY_PROTOCOL_TIMEOUT']);
  });

  it('reports a header cut short by the end of the stream', async () => {
    const srv = await echoServer();
    await client(srv.port, [
      encodeProxyHeader({ version: 2, source: client4, destination: vip4 }).subarray(0, 20),
    ]);
    await new Promise((r) => setTimeout(r, 20));
    expect(srv.errors.map((e) => e.code)).toEqual(['FULCRUM_PROXY_PROTOCOL_TRUNCATED']);
  });

  it('trustedProxies: a peer outside the list is refused', async () => {
    const srv = await echoServer({ trustedProxies: ['10.0.0.0/8', 'fd00::/8'] });
    await client(srv.port, [encodeProxyHeader({ version: 2, source: client4, destination: vip4 })]);
    await new Promise((r) => setTimeout(r, 20));
    expect(srv.errors.map((e) => e.code)).toEqual(['FULCRUM_PROXY_PROTOCOL_UNTRUSTED']);
  });

  it('trustedProxies: keep-peer-address strips the header but does not believe it', async () => {
    const srv = await echoServer({ trustedProxies: ['10.0.0.0/8'], onUntrusted: 'keep-peer-address' });
    const seen = srv.next();
    await client(srv.port, [
      Buffer.concat([
        encodeProxyHeader({ version: 2, source: client4, destination: vip4 }),
        Buffer.from('z'),
      ]),
    ]);
    const s = await seen;
    expect(s.remoteAddress).toBe('127.0.0.1');
    expect(s.data.toString()).toBe('z');
    expect(proxyHeaderOf(s.socket)?.source).toEqual(client4);
  });

  it('trustedProxies: a listed peer is believed, over IPv6 too', async () => {
    const srv = await echoServer({ trustedProxies: ['127.0.0.1', '::1/128'] }, '::1');
    const seen = srv.next();
    await client(srv.port, [encodeProxyHeader({ version: 2, source: client4, destination: vip4 })], '::1');
    expect((await seen).remoteAddress).toBe('203.0.113.7');
  });
});

describe('acceptProxyProtocol on an http.Server', () => {
  it('req.socket.remoteAddress is the client, for every request on a keep-alive connection', async () => {
    const server = acceptProxyProtocol(
      createHttpServer((req, res) =>
        res.end(`${req.socket.remoteAddress}:${req.socket.remotePort} ${req.url}`),
      ),
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const header = encodeProxyHeader({
      version: 1,
      source: { address: '198.51.100.20', port: 4242 },
      destination: { address: '192.0.2.1', port: 80 },
    });
    const reqs = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const body = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => s.write(Buffer.concat([header, Buffer.from(reqs)])));
      const got: Buffer[] = [];
      s.on('data', (d) => got.push(d));
      s.on('end', () => resolve(Buffer.concat(got).toString()));
      s.on('error', reject);
    });
    expect(body).toContain('198.51.100.20:4242 /a');
    expect(body).toContain('198.51.100.20:4242 /b');
  });

  it('a header in its own segment, the request later (http consumes the socket handle directly)', async () => {
    const server = acceptProxyProtocol(
      createHttpServer((req, res) => res.end(String(req.socket.remoteAddress))),
    );
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '2001:db8::77', port: 1 },
      destination: { address: '2001:db8::1', port: 80 },
    });
    const body = await new Promise<string>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', async () => {
        s.write(header);
        await new Promise((r) => setTimeout(r, 30));
        s.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      });
      let b = '';
      s.on('data', (d) => (b += d));
      s.on('close', () => resolve(b));
      s.on('error', reject);
    });
    expect(body).toMatch(/\r\n\r\n2001:db8::77$/);
  });
});
