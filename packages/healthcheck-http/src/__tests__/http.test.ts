import { healthCheckCases, requires } from '@fulcrum/testkit';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import http from '../index.js';
import { closed, listening, watchCheck } from '@fulcrum/testkit';

const run = promisify(execFile);

describe('http passes the health-check conformance suite', () => {
  for (const c of healthCheckCases(http)) it(c.name, c.run);
});

const fast = { interval: '30ms', timeout: '500ms', warmup: 0, initialState: 'down' };
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** A server whose sockets are all destroyed on cleanup, so close() never waits. */
async function serve(server: Server) {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  });
  const port = await listening(server);
  cleanup.push(() => {
    for (const s of sockets) s.destroy();
    return closed(server);
  });
  return { port, sockets };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const serveHttp = (handler: Handler) => serve(createHttpServer(handler));
const serveRaw = (onConnection: (s: Socket) => void) => serve(createTcpServer(onConnection));

/** The first verdict after alpha's down. */
async function verdictFor(options: Record<string, unknown>, port: number, address = '127.0.0.1') {
  const w = watchCheck(http, { ...fast, ...options }, address, port);
  cleanup.push(w.stop);
  const first = await w.next();
  if (first.reason.startsWith('initial state')) {
    // up arrives as a change; a down check says nothing new after alpha, so wait for a check
    const next = await Promise.race([
      w.next(1500),
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 400)),
    ]);
    if (next) return next;
    return { up: false, reason: lastReason(w) };
  }
  return first;
}
const lastReason = (w: ReturnType<typeof watchCheck>) => w.verdicts.at(-1)!.reason;

describe('http: status, body regex, host header, method', () => {
  it('a 2xx answer is up; the request is HTTP/1.0 with the Host header and method asked for', async () => {
    const seen: { method?: string; url?: string; host?: string; version?: string }[] = [];
    const { port } = await serveHttp((req, res) => {
      seen.push({ method: req.method, url: req.url, host: req.headers.host, version: req.httpVersion });
      res.end('ok');
    });
    expect(await verdictFor({ path: '/health?x=1' }, port)).toMatchObject({ up: true, reason: 'status 200' });
    expect(seen[0]).toEqual({ method: 'GET', url: '/health?x=1', host: `127.0.0.1:${port}`, version: '1.0' });
    expect(await verdictFor({ method: 'HEAD', host: 'www.example.com' }, port)).toMatchObject({ up: true });
    expect(seen.at(-1)).toMatchObject({ method: 'HEAD', host: 'www.example.com' });
  });

  it.each([
    [503, {}, false, 'status 503'],
    [302, {}, false, 'status 302'],
    [302, { status: [200, '300-399'] }, true, 'status 302'],
    [404, { status: [200, 404] }, true, 'status 404'],
    [200, { status: ['201-299'] }, false, 'status 200'],
  ])('status %i with %j: up %s', async (code, options, up, reason) => {
    const { port } = await serveHttp((_req, res) => {
      res.statusCode = code;
      res.end('x');
    });
    const v = await verdictFor({ ...options, initialState: up ? 'down' : 'up' }, port);
    expect(v).toMatchObject({ up, reason });
  });

  it('bodyRegex: a matching body is up, another is down with the reason', async () => {
    const { port } = await serveHttp((_req, res) => res.end('{"status":"green","db":"ok"}'));
    expect(await verdictFor({ bodyRegex: '"status":"(green|yellow)"' }, port)).toMatchObject({ up: true });
    const v = await verdictFor({ bodyRegex: '"status":"red"', initialState: 'up' }, port);
    expect(v).toMatchObject({ up: false, reason: 'status 200, body does not match /"status":"red"/' });
  });
});

const genhash = requires({ commands: ['genhash'] });
describe.skipIf(genhash.skip)(`http digest against keepalived's genhash${genhash.note}`, () => {
  const bodies: [string, Buffer][] = [
    ['text', Buffer.from('<html><body>It works!</body></html>\n')],
    ['empty', Buffer.alloc(0)],
    ['binary', randomBytes(4096)],
    ['large, written in pieces', randomBytes(300 * 1024)],
  ];
  it.each(bodies)('%s body: our digest is genhash -s -p -u', async (_name, body) => {
    const { port } = await serveHttp((_req, res) => {
      res.setHeader('content-type', 'application/octet-stream');
      for (let i = 0; i < body.length; i += 10_000) res.write(body.subarray(i, i + 10_000));
      res.end();
    });
    const { stdout: out } = await run('genhash', ['-s', '127.0.0.1', '-p', String(port), '-u', '/page'], {
      timeout: 10_000,
    });
    const digest = /\b([0-9a-f]{32})\b/.exec(out)?.[1];
    expect(digest, `genhash printed ${JSON.stringify(out)}`).toBeDefined();
    expect(digest).toBe(createHash('md5').update(body).digest('hex'));
    const v = await verdictFor({ path: '/page', digest: digest!.toUpperCase() }, port);
    expect(v).toMatchObject({ up: true, reason: `status 200, digest ${digest}` });
    const bad = await verdictFor({ path: '/page', digest: 'f'.repeat(32), initialState: 'up' }, port);
    expect(bad).toMatchObject({ up: false, reason: `status 200, digest ${digest} is not ${'f'.repeat(32)}` });
  });
});

describe('http: bad servers are failures with a reason, bounded in time and memory', () => {
  it('malformed status line', async () => {
    const { port } = await serveRaw((s) => s.end('HELLO THERE\r\n\r\n'));
    const v = await verdictFor({ initialState: 'up' }, port);
    expect(v).toMatchObject({ up: false, reason: 'malformed status line "HELLO THERE"' });
  });

  it('garbage without a line end is judged after 64 bytes, not read forever', async () => {
    const { port } = await serveRaw((s) => {
      s.write(Buffer.alloc(100, 'A'));
    });
    const v = await verdictFor({ initialState: 'up' }, port);
    expect(v.up).toBe(false);
    expect(v.reason).toMatch(/^malformed status line "A{60}…"$/);
  });

  it('a server that accepts and hangs: timeout', async () => {
    const { port } = await serveRaw(() => {});
    const w = watchCheck(http, { ...fast, initialState: 'up', timeout: '150ms' }, '127.0.0.1', port);
    cleanup.push(w.stop);
    const v = await w.next(2000);
    expect(v).toMatchObject({ up: false, reason: 'timeout after 150ms' });
    expect(w.verdicts[0]!.at).toBeLessThan(800);
  });

  it('headers that never end: bounded at 16 KiB', async () => {
    const { port } = await serveRaw((s) => {
      s.write('HTTP/1.0 200 OK\r\n');
      const t = setInterval(() => s.writable && s.write(`X-Pad: ${'p'.repeat(1000)}\r\n`), 1);
      s.on('close', () => clearInterval(t));
    });
    const v = await verdictFor({ initialState: 'up', digest: '0'.repeat(32) }, port);
    expect(v).toMatchObject({ up: false, reason: 'response head exceeds 16384 bytes' });
  });

  it('an endless body: up on the status line when the body does not matter', async () => {
    const { port } = await serveRaw((s) => {
      s.write('HTTP/1.0 200 OK\r\n\r\n');
      const t = setInterval(() => s.writable && s.write(Buffer.alloc(64 * 1024)), 1);
      s.on('close', () => clearInterval(t));
    });
    expect(await verdictFor({}, port)).toMatchObject({ up: true, reason: 'status 200' });
  });

  it('an endless body with a digest or regex: down at maxBodySize', async () => {
    const { port } = await serveRaw((s) => {
      s.write('HTTP/1.0 200 OK\r\n\r\n');
      const t = setInterval(() => s.writable && s.write(Buffer.alloc(64 * 1024, 'z')), 1);
      s.on('close', () => clearInterval(t));
    });
    const before = process.memoryUsage().arrayBuffers;
    const v = await verdictFor({ initialState: 'up', bodyRegex: 'never', maxBodySize: 256 * 1024 }, port);
    expect(v).toMatchObject({ up: false, reason: 'body exceeds 262144 bytes' });
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('a body shorter than its Content-Length', async () => {
    const { port } = await serveRaw((s) => s.end('HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const v = await verdictFor({ initialState: 'up', digest: '0'.repeat(32) }, port);
    expect(v).toMatchObject({ up: false, reason: 'body ended after 3 of 10 bytes' });
  });

  it('a connection closed before any answer, and a refused port', async () => {
    const { port } = await serveRaw((s) => s.end());
    expect(await verdictFor({ initialState: 'up' }, port)).toMatchObject({
      up: false,
      reason: 'connection closed without a response',
    });
    const { port: gone, sockets } = await serveRaw(() => {});
    void sockets;
    await cleanup.pop()!();
    expect(await verdictFor({ initialState: 'up' }, gone)).toMatchObject({
      up: false,
      reason: `connect ECONNREFUSED 127.0.0.1:${gone}`,
    });
  });
});

const openssl = requires({ commands: ['openssl'] });
describe.skipIf(openssl.skip)(`http with tls: true (SSL_GET), SNI and verify${openssl.note}`, () => {
  let dir = '';
  let key = '';
  let cert = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-http-tls-'));
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
        ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2'],
        ...['-subj', '/CN=www.example.test', '-addext', 'subjectAltName=DNS:www.example.test'],
      ],
      { stdio: 'ignore' },
    );
    key = readFileSync(join(dir, 'key.pem'), 'utf8');
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const serveTls = async () => {
    const names: (string | false | null)[] = [];
    const server = createHttpsServer({ key, cert }, (req, res) => res.end(`hello ${req.headers.host}`));
    server.on('secureConnection', (s) => names.push(s.servername));
    const { port } = await serve(server);
    return { port, names };
  };

  it('verify off (keepalived SSL_GET): a self-signed server is up; no SNI for an IP', async () => {
    const { port, names } = await serveTls();
    expect(await verdictFor({ tls: true }, port)).toMatchObject({ up: true, reason: 'status 200' });
    expect(names[0]).toBe(false);
  });

  it('SNI is the host option (virtualhost), or sni when given', async () => {
    const { port, names } = await serveTls();
    expect(await verdictFor({ tls: true, host: 'www.example.test' }, port)).toMatchObject({ up: true });
    expect(await verdictFor({ tls: true, sni: 'other.example.test' }, port)).toMatchObject({ up: true });
    expect(names.slice(0, 2)).toEqual(['www.example.test', 'other.example.test']);
  });

  it('verify on: untrusted is down with the reason; trusted through ca with the right name is up', async () => {
    const { port } = await serveTls();
    const v = await verdictFor(
      { tls: true, verify: true, sni: 'www.example.test', initialState: 'up' },
      port,
    );
    expect(v.up).toBe(false);
    expect(v.reason).toMatch(/self[- ]signed certificate/);
    const ok = await verdictFor({ tls: true, verify: true, ca: cert, sni: 'www.example.test' }, port);
    expect(ok).toMatchObject({ up: true, reason: 'status 200' });
    const wrongName = await verdictFor(
      { tls: true, verify: true, ca: cert, sni: 'evil.test', initialState: 'up' },
      port,
    );
    expect(wrongName.up).toBe(false);
    expect(wrongName.reason).toMatch(/does not match certificate's altnames|altnames/);
  });

  it.skipIf(genhash.skip)('digest over TLS matches genhash -S', async () => {
    const { port } = await serveTls();
    const { stdout: out } = await run('genhash', ['-S', '-s', '127.0.0.1', '-p', String(port), '-u', '/'], {
      timeout: 10_000,
    });
    const digest = /\b([0-9a-f]{32})\b/.exec(out)![1]!;
    expect(await verdictFor({ tls: true, digest }, port)).toMatchObject({ up: true });
  });
});
