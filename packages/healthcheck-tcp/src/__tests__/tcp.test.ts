import { healthCheckCases } from '@fulcrum/testkit';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import tcp from '../index.js';
import { closed, listening, watchCheck } from '@fulcrum/testkit';

describe('tcp passes the health-check conformance suite', () => {
  for (const c of healthCheckCases(tcp)) it(c.name, c.run);
});

describe('tcp (TCP_CHECK) on loopback', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });
  const serve = async (onConnection: (s: Socket) => void = (s) => s.end(), host = '127.0.0.1') => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {});
      onConnection(s);
    });
    const port = await listening(server, host);
    cleanup.push(() => {
      for (const s of sockets) s.destroy();
      return closed(server);
    });
    return { server, port, sockets };
  };
  const fast = { interval: '30ms', timeout: '300ms', warmup: 0 };

  it('a listening server is up; it goes down when it stops listening, and up again', async () => {
    const { server, port } = await serve();
    const w = watchCheck(tcp, { ...fast, initialState: 'down' }, '127.0.0.1', port);
    cleanup.push(w.stop);
    expect((await w.next()).up).toBe(false); // alpha
    const up = await w.next();
    expect(up).toMatchObject({ up: true, reason: `connected to 127.0.0.1:${port}` });
    await closed(server);
    const down = await w.next();
    expect(down.up).toBe(false);
    expect(down.reason).toBe(`connect ECONNREFUSED 127.0.0.1:${port}`);
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    expect((await w.next()).up).toBe(true);
  });

  it('fall 3: down only after three refused checks in a row', async () => {
    const { port, server } = await serve();
    await closed(server);
    const w = watchCheck(tcp, { ...fast, fall: 3 }, '127.0.0.1', port);
    cleanup.push(w.stop);
    const down = await w.next();
    expect(down.reason).toMatch(/ECONNREFUSED .*\(3 checks in a row\)$/);
    expect(w.verdicts[0]!.at).toBeGreaterThanOrEqual(60); // two intervals at least
  });

  it('a server that accepts and says nothing is up (TCP_CHECK only connects); the socket is closed', async () => {
    const { port, sockets } = await serve(() => {});
    const w = watchCheck(tcp, { ...fast, initialState: 'down' }, '127.0.0.1', port);
    cleanup.push(w.stop);
    await w.next();
    expect((await w.next()).up).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(sockets.size, 'the checker leaves no connection open').toBeLessThanOrEqual(1);
  });

  it('an address that never answers is down within the timeout, with a reason', async () => {
    // TEST-NET-1 is never routed: the connect hangs (timeout) or fails at once (unreachable, or
    // refused by a local firewall), depending on the host
    const w = watchCheck(tcp, { ...fast, timeout: '200ms' }, '192.0.2.1', 9);
    cleanup.push(w.stop);
    const down = await w.next(2000);
    expect(down.up).toBe(false);
    expect(down.reason).toMatch(
      /timeout after 200ms|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ECONNREFUSED|EACCES|EPERM/,
    );
    expect(w.verdicts[0]!.at).toBeLessThan(1000);
  });

  it('IPv6 servers', async () => {
    const { port } = await serve((s) => s.end(), '::1');
    const w = watchCheck(tcp, { ...fast, initialState: 'down' }, '::1', port);
    cleanup.push(w.stop);
    await w.next();
    expect(await w.next()).toMatchObject({ up: true, reason: `connected to [::1]:${port}` });
  });

  it('port and address override (connect_port, connect_ip), and bindTo as the source', async () => {
    const peers: string[] = [];
    const { port } = await serve((s) => {
      peers.push(s.remoteAddress!);
      s.end();
    });
    const w = watchCheck(
      tcp,
      { ...fast, initialState: 'down', address: '127.0.0.1', port, bindTo: '127.0.0.2' },
      '10.200.200.200',
      1,
    );
    cleanup.push(w.stop);
    await w.next();
    expect((await w.next()).up).toBe(true);
    expect(peers[0]).toBe('127.0.0.2');
  });
});
