import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { requires } from '@fulcrum/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptProxyProtocol, encodeProxyHeader, proxyHeaderOf } from '@fulcrum/proxy-protocol';

const need = requires({ commands: ['openssl'] });

describe.skipIf(need.skip)(
  `acceptProxyProtocol on TLS servers (the header comes before the handshake)${need.note}`,
  () => {
    let dir: string;
    let key: Buffer;
    let cert: Buffer;
    const servers: Server[] = [];
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'fulcrum-pp-tls-'));
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'rsa:2048',
          '-nodes',
          '-keyout',
          join(dir, 'k.pem'),
          '-out',
          join(dir, 'c.pem'),
          '-days',
          '2',
          '-subj',
          '/CN=localhost',
        ],
        { stdio: 'ignore' },
      );
      key = readFileSync(join(dir, 'k.pem'));
      cert = readFileSync(join(dir, 'c.pem'));
    });
    afterAll(async () => {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    /** Raw TCP: the PROXY header, then TLS over the same socket; returns what the server answered. */
    function talk(port: number, header: Buffer, request = ''): Promise<string> {
      return new Promise((resolve, reject) => {
        const raw = connect(port, '127.0.0.1', () => {
          raw.write(header);
          const t = tls.connect({ socket: raw, rejectUnauthorized: false, servername: 'localhost' }, () =>
            t.write(request),
          );
          let got = '';
          t.on('data', (d) => (got += d));
          t.on('close', () => resolve(got));
          t.on('error', reject);
        });
        raw.on('error', reject);
      });
    }

    it('tls.Server: the secure socket reports the header client', async () => {
      const server = acceptProxyProtocol(
        tls.createServer({ key, cert }, (s) =>
          s.end(`${s.remoteAddress} ${s.remotePort} ${proxyHeaderOf(s)?.uniqueId?.toString()}`),
        ),
      );
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const header = encodeProxyHeader({
        version: 2,
        source: { address: '203.0.113.7', port: 5 },
        destination: { address: '192.0.2.1', port: 443 },
        uniqueId: Buffer.from('t1'),
      });
      expect(await talk((server.address() as AddressInfo).port, header)).toBe('203.0.113.7 5 t1');
    });

    it('https.Server: req.socket.remoteAddress is the client', async () => {
      const server = acceptProxyProtocol(
        createHttpsServer({ key, cert }, (req, res) =>
          res.end(`${req.socket.remoteAddress}:${req.socket.remotePort}`),
        ),
      );
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const header = encodeProxyHeader({
        version: 1,
        source: { address: '2001:db8::5', port: 6000 },
        destination: { address: '2001:db8::1', port: 443 },
      });
      const answer = await talk(
        (server.address() as AddressInfo).port,
        header,
        'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      );
      expect(answer).toMatch(/\r\n\r\n2001:db8::5:6000$/);
    });

    it('an untrusted peer kept at its real address stays so after TLS', async () => {
      const server = acceptProxyProtocol(
        tls.createServer({ key, cert }, (s) =>
          s.end(`${s.remoteAddress} ${proxyHeaderOf(s)?.source && 'header-kept'}`),
        ),
        { trustedProxies: ['10.0.0.0/8'], onUntrusted: 'keep-peer-address' },
      );
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const header = encodeProxyHeader({
        version: 2,
        source: { address: '203.0.113.7', port: 5 },
        destination: { address: '192.0.2.1', port: 443 },
      });
      expect(await talk((server.address() as AddressInfo).port, header)).toBe('127.0.0.1 header-kept');
    });
  },
);
