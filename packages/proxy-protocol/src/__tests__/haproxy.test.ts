// Peer tests with HAProxy (Debian's package), an implementation nobody here wrote:
// - HAProxy with accept-proxy reads the headers Fulcrum writes and reports the client it
//   understood, both in an HTTP response (lf-string) and in its log (%ci:%cp);
// - HAProxy with send-proxy / send-proxy-v2 / send-proxy-v2-ssl-cn writes headers that
//   Fulcrum's server helper and parser read.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { requires } from '@fulcrum/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  acceptProxyProtocol,
  encodeProxyHeader,
  PP2_CLIENT,
  proxyHeaderOf,
  type ProxyHeader,
  type ProxyHeaderInput,
} from '@fulcrum/proxy-protocol';
import { freePort, startHaproxy, type Haproxy } from './haproxy-peer.js';

const need = requires({ commands: ['haproxy', 'openssl'] });

/** Sends `data`, returns everything until the peer closes (empty when it just hangs up). */
function exchange(host: string, port: number, data: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, host, () => s.write(data));
    const got: Buffer[] = [];
    s.on('data', (d) => got.push(d));
    s.on('close', () => resolve(Buffer.concat(got).toString()));
    s.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    s.setTimeout(5000, () => s.destroy(new Error('no answer from haproxy in 5 s')));
  });
}

const http = Buffer.from('GET / HTTP/1.0\r\n\r\n');
const bodyOf = (response: string) => response.split('\r\n\r\n')[1]?.trim();

describe.skipIf(need.skip)(`HAProxy reads Fulcrum's PROXY headers (accept-proxy)${need.note}`, () => {
  let dir: string;
  let haproxy: Haproxy;
  let p4: number;
  let p6: number;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-pp-recv-'));
    p4 = await freePort('127.0.0.1');
    p6 = await freePort('::1');
    haproxy = await startHaproxy(
      dir,
      'receiver',
      `  log stdout format raw local0
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend pp
  bind 127.0.0.1:${p4} accept-proxy
  bind [::1]:${p6} accept-proxy
  log-format "seen %ci:%cp -> %fi:%fp"
  http-request return status 200 content-type text/plain lf-string "%ci %cp %fi %fp uid=%[fc_pp_unique_id] authority=%[fc_pp_authority]"
`,
    );
  });
  afterAll(async () => {
    await haproxy?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cases: [string, ProxyHeaderInput, string][] = [
    [
      'v1 TCP4',
      {
        version: 1,
        source: { address: '203.0.113.7', port: 51000 },
        destination: { address: '192.0.2.1', port: 443 },
      },
      '203.0.113.7 51000 192.0.2.1 443',
    ],
    [
      'v1 TCP6',
      {
        version: 1,
        source: { address: '2001:db8::7', port: 51001 },
        destination: { address: '2001:db8::1', port: 8443 },
      },
      '2001:db8::7 51001 2001:db8::1 8443',
    ],
    [
      'v2 INET',
      {
        version: 2,
        source: { address: '198.51.100.9', port: 1 },
        destination: { address: '192.0.2.2', port: 80 },
      },
      '198.51.100.9 1 192.0.2.2 80',
    ],
    [
      'v2 INET6',
      {
        version: 2,
        source: { address: '2001:db8:ffff::9', port: 65535 },
        destination: { address: '2001:db8::2', port: 80 },
      },
      '2001:db8:ffff::9 65535 2001:db8::2 80',
    ],
  ];

  for (const [name, input, expected] of cases) {
    for (const [family, host] of [
      ['IPv4', '127.0.0.1'],
      ['IPv6', '::1'],
    ] as const) {
      it(`${name} over ${family} loopback: HAProxy sees the client Fulcrum sent`, async () => {
        const port = family === 'IPv4' ? p4 : p6;
        const response = await exchange(host, port, Buffer.concat([encodeProxyHeader(input), http]));
        expect(bodyOf(response)).toBe(`${expected} uid= authority=`);
      });
    }
  }

  it('logs the client with %ci:%cp', async () => {
    await exchange(
      '127.0.0.1',
      p4,
      Buffer.concat([
        encodeProxyHeader({
          version: 2,
          source: { address: '203.0.113.99', port: 4321 },
          destination: { address: '192.0.2.9', port: 443 },
        }),
        http,
      ]),
    );
    await expect
      .poll(() => haproxy.output(), { timeout: 3000 })
      .toContain('seen 203.0.113.99:4321 -> 192.0.2.9:443');
  });

  it('v2 TLVs: HAProxy verifies our CRC32C and reads the unique id and authority', async () => {
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '203.0.113.5', port: 7 },
      destination: { address: '192.0.2.1', port: 443 },
      crc32c: true,
      uniqueId: Buffer.from('fulcrum-conn-42'),
      authority: 'www.example.org',
    });
    expect(bodyOf(await exchange('127.0.0.1', p4, Buffer.concat([header, http])))).toBe(
      '203.0.113.5 7 192.0.2.1 443 uid=fulcrum-conn-42 authority=www.example.org',
    );
  });

  it('HAProxy drops a header whose CRC32C we corrupted (so the check above is real)', async () => {
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '203.0.113.5', port: 7 },
      destination: { address: '192.0.2.1', port: 443 },
      crc32c: true,
    });
    header[header.length - 1]! ^= 0xff;
    expect(await exchange('127.0.0.1', p4, Buffer.concat([header, http]))).toBe('');
  });

  it('LOCAL and UNKNOWN: HAProxy keeps the real connection addresses', async () => {
    for (const input of [
      { version: 2, command: 'local' },
      { version: 1, command: 'local' },
    ] as ProxyHeaderInput[]) {
      expect(
        bodyOf(await exchange('127.0.0.1', p4, Buffer.concat([encodeProxyHeader(input), http]))),
      ).toMatch(new RegExp(`^127\\.0\\.0\\.1 \\d+ 127\\.0\\.0\\.1 ${p4} uid= authority=$`));
    }
  });

  it('the dataplane encoder: a v4 client on a v6 service arrives as a mapped address', async () => {
    const header = encodeProxyHeader({
      version: 2,
      source: { address: '203.0.113.8', port: 9 },
      destination: { address: '2001:db8::1', port: 443 },
    });
    expect(bodyOf(await exchange('::1', p6, Buffer.concat([header, http])))).toBe(
      '::ffff:203.0.113.8 9 2001:db8::1 443 uid= authority=',
    );
  });
});

interface Seen {
  header: ProxyHeader;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  data: string;
}

describe.skipIf(need.skip)(
  `Fulcrum reads HAProxy's PROXY headers (send-proxy, send-proxy-v2, send-proxy-v2-ssl-cn)${need.note}`,
  () => {
    let dir: string;
    let haproxy: Haproxy;
    let server: Server;
    const ports = { v1: 0, v2: 0, ssl: 0 };
    const seen = new Map<number, (s: Seen) => void>();
    const early = new Map<number, Seen>();

    /** The connection HAProxy opened for the client whose source port is `port`. */
    const seenFor = (port: number) =>
      new Promise<Seen>((resolve) => {
        const got = early.get(port);
        if (got) resolve(got);
        else seen.set(port, resolve);
      });

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'fulcrum-pp-send-'));
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'srv.key'),
          '-out',
          join(dir, 'srv.crt'),
          '-days',
          '2',
          '-subj',
          '/CN=fulcrum.test',
        ],
        { stdio: 'ignore' },
      );
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'cli.key'),
          '-out',
          join(dir, 'cli.crt'),
          '-days',
          '2',
          '-subj',
          '/CN=client.fulcrum.test',
        ],
        { stdio: 'ignore' },
      );
      const pem = readFileSync(join(dir, 'srv.crt'), 'utf8') + readFileSync(join(dir, 'srv.key'), 'utf8');
      writeFileSync(join(dir, 'srv.pem'), pem);

      server = acceptProxyProtocol(
        createServer((socket: Socket) => {
          const header = proxyHeaderOf(socket)!;
          const info = { header, remoteAddress: socket.remoteAddress, remotePort: socket.remotePort };
          let data = '';
          socket.on('data', (d) => {
            data += d;
            socket.end();
          });
          socket.on('end', () => socket.end());
          socket.on('close', () => {
            const port = (header.source as { port?: number } | undefined)?.port ?? -1;
            const s = { ...info, data };
            const waiting = seen.get(port);
            if (waiting) waiting(s);
            else early.set(port, s);
          });
        }),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const backend = (server.address() as AddressInfo).port;
      ports.v1 = await freePort('127.0.0.1');
      ports.v2 = await freePort('127.0.0.1');
      ports.ssl = await freePort('127.0.0.1');
      haproxy = await startHaproxy(
        dir,
        'sender',
        `defaults
  mode tcp
  timeout connect 2s
  timeout client 5s
  timeout server 5s
listen v1
  bind 127.0.0.1:${ports.v1}
  bind [::1]:${ports.v1}
  server fulcrum 127.0.0.1:${backend} send-proxy
listen v2
  bind 127.0.0.1:${ports.v2}
  bind [::1]:${ports.v2}
  unique-id-format "conn-%ci-%cp"
  server fulcrum 127.0.0.1:${backend} send-proxy-v2 proxy-v2-options crc32c,unique-id
listen v2ssl
  bind 127.0.0.1:${ports.ssl} ssl crt ${join(dir, 'srv.pem')} ca-file ${join(dir, 'cli.crt')} verify optional alpn h2,http/1.1
  server fulcrum 127.0.0.1:${backend} send-proxy-v2-ssl-cn proxy-v2-options crc32c,authority,ssl-cipher,cert-sig,cert-key
`,
      );
    });
    afterAll(async () => {
      await haproxy?.stop();
      await new Promise((r) => (server ? server.close(r) : r(undefined)));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    async function through(host: string, port: number): Promise<{ local: number; seen: Seen }> {
      const s = connect(port, host);
      await new Promise((r) => s.once('connect', r));
      const local = s.localPort!;
      s.write('hello');
      s.resume();
      await new Promise((r) => s.once('close', r));
      return { local, seen: await seenFor(local) };
    }

    for (const [family, host] of [
      ['IPv4', '127.0.0.1'],
      ['IPv6', '::1'],
    ] as const) {
      it(`send-proxy (v1) over ${family}`, async () => {
        const { local, seen } = await through(host, ports.v1);
        expect(seen.header).toMatchObject({
          version: 1,
          family: family === 'IPv4' ? 'inet' : 'inet6',
          source: { address: host, port: local },
          destination: { address: host, port: ports.v1 },
        });
        expect([seen.remoteAddress, seen.remotePort, seen.data]).toEqual([host, local, 'hello']);
      });

      it(`send-proxy-v2 with crc32c and unique-id over ${family}`, async () => {
        const { local, seen } = await through(host, ports.v2);
        expect(seen.header).toMatchObject({
          version: 2,
          command: 'proxy',
          family: family === 'IPv4' ? 'inet' : 'inet6',
          transport: 'stream',
          source: { address: host, port: local },
          destination: { address: host, port: ports.v2 },
        });
        expect(seen.header.crc32c).toBeTypeOf('number');
        expect(seen.header.uniqueId?.toString()).toBe(`conn-${host}-${local}`);
        expect([seen.remoteAddress, seen.remotePort, seen.data]).toEqual([host, local, 'hello']);
      });
    }

    it('send-proxy-v2-ssl-cn: TLS facts in the SSL TLV, ALPN and authority', async () => {
      const s = tls.connect({
        port: ports.ssl,
        host: '127.0.0.1',
        servername: 'fulcrum.test',
        rejectUnauthorized: false,
        ALPNProtocols: ['h2'],
        cert: readFileSync(join(dir, 'cli.crt')),
        key: readFileSync(join(dir, 'cli.key')),
      });
      await new Promise((r) => s.once('secureConnect', r));
      const local = s.localPort!;
      const cipher = s.getCipher();
      const version = s.getProtocol();
      s.write('hello');
      s.resume();
      await new Promise((r) => s.once('close', r));
      const { header, data } = await seenFor(local);
      expect(data).toBe('hello');
      expect(header).toMatchObject({
        source: { address: '127.0.0.1', port: local },
        alpn: Buffer.from('h2'),
        authority: 'fulcrum.test',
      });
      expect(header.crc32c).toBeTypeOf('number');
      expect(header.ssl).toMatchObject({
        client: PP2_CLIENT.SSL | PP2_CLIENT.CERT_CONN | PP2_CLIENT.CERT_SESS,
        verify: 0,
        version,
        cipher: cipher.standardName,
        cn: 'client.fulcrum.test',
        keyAlg: 'RSA2048',
        sigAlg: 'RSA-SHA256',
      });
    });
  },
);
