import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allChecked,
  freePort,
  fulcrumSync,
  getJson,
  startDaemon,
  STUB_TIMEOUTS,
  until,
  writeStubPlugins,
  type Daemon,
} from './daemon.js';

/**
 * The oracle for the text layout: the printf formats of Debian's ipvsadm 1.31 (print_title,
 * print_service_entry, print_conn, list_timeout), applied by a tiny printf of our own.
 */
const IPVSADM = {
  title:
    'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n',
  statsTitle: '%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n',
  svcName: '%-4s %s',
  service: '%s %s',
  persistent: ' persistent %u',
  dest: '  -> %-28s %-7s %-6d %-10u %-10u',
  statsService: '%-33s',
  statsDest: '  -> %-28s',
  connTitle: 'IPVS connection entries\npro expire %-11s %-18s %-18s %s\n',
  conn: '%-3s %-6s %-11s %-18s %-18s %s\n',
  expire: '%02d:%02d',
  timeout: 'Timeout (tcp tcpfin udp): %d %d %d\n',
};

function printf(format: string, ...args: (string | number)[]): string {
  let i = 0;
  return format.replace(/%(-?)(0?)(\d*)(?:ll)?([sdu])/g, (_m, minus: string, zero: string, width: string) => {
    const v = String(args[i++]);
    const w = Number(width || 0);
    if (minus) return v.padEnd(w);
    return v.padStart(w, zero ? '0' : ' ');
  });
}

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-adm-'));
writeStubPlugins(dir);
const shared: ChildProcess[] = [];
afterAll(() => {
  for (const c of shared) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function config(adminPort: number) {
  return `plugins: [fulcrum-stub]
dataplane: { name: stub, ${STUB_TIMEOUTS} }
admin: { listen: 127.0.0.1:${adminPort} }
services:
  - name: web
    listen: 10.0.0.1:80
    scheduler: rr
    persistence: { timeout: 300 }
    healthChecks: [port9003]
    realServers:
      - { address: 127.0.0.1:9002, weight: 2 }
      - { address: 127.0.0.1:9001 }
      - { address: 127.0.0.1:9003, weight: 3 }
  - name: dns
    protocol: udp
    listen: 10.0.0.2:53
    scheduler: wlc
    realServers:
      - { address: 127.0.0.1:5353 }
`;
}

describe('fulcrum adm', { timeout: 60_000 }, () => {
  let d: Daemon;
  let port: number;
  let admin: string;
  const adm = (...args: string[]) => fulcrumSync(dir, ['adm', '--admin', admin, ...args]);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const api = (path: string) => getJson(`http://${admin}${path}`) as Promise<any>;
  const version = async () => (await api('/healthz')).configVersion as number;

  beforeAll(async () => {
    port = await freePort();
    admin = `127.0.0.1:${port}`;
    const file = join(dir, 'adm.yaml');
    writeFileSync(file, config(port));
    d = startDaemon(dir, file, shared);
    await d.waitFor('started');
    await until(allChecked(admin));
  });
  afterAll(async () => {
    expect(await d.stop()).toBe(0);
  });

  it('-Ln prints services and servers in the layout of ipvsadm -Ln', () => {
    const r = adm('-Ln');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const svc = (proto: string, vip: string) => printf(IPVSADM.svcName, proto, vip);
    const dest = (rip: string, w: number, act: number, inact: number) =>
      printf(IPVSADM.dest, rip, 'FullNat', w, act, inact);
    expect(r.stdout).toBe(
      'Fulcrum version 0.1.0 (config version 1)\n' +
        IPVSADM.title +
        printf(IPVSADM.service, svc('TCP', '10.0.0.1:80'), 'rr') +
        printf(IPVSADM.persistent, 300) +
        '\n' +
        // Sorted by address and port as ipvsadm does; ActiveConn/InActConn from the dataplane.
        dest('127.0.0.1:9001', 1, 2, 2) +
        '\n' +
        dest('127.0.0.1:9002', 2, 1, 0) +
        '\n' +
        // Down by its health check: effective weight 0, and the state after InActConn as DPVS's ipvsadm does.
        dest('127.0.0.1:9003', 0, 3, 4) +
        ' down\n' +
        printf(IPVSADM.service, svc('UDP', '10.0.0.2:53'), 'wlc') +
        '\n' +
        dest('127.0.0.1:5353', 1, 1, 0) +
        '\n',
    );
    // The same listing with -l, grouped or not, with no command at all, and for one service.
    expect(adm('-l', '-n').stdout).toBe(r.stdout);
    expect(fulcrumSync(dir, ['adm'], { FULCRUM_ADMIN: admin }).stdout).toBe(r.stdout);
    const one = adm('-Ln', '-u', '10.0.0.2:53').stdout.split('\n');
    expect(one.slice(3)).toEqual([
      printf(IPVSADM.service, svc('UDP', '10.0.0.2:53'), 'wlc'),
      dest('127.0.0.1:5353', 1, 1, 0),
      '',
    ]);
  });

  it('-Lnc prints the connection table as ipvsadm -Lnc, persistence templates included', () => {
    const r = adm('-Lnc');
    expect(r.status).toBe(0);
    const row = (proto: string, s: number, state: string, client: string, vip: string, rip: string) =>
      printf(
        IPVSADM.conn,
        proto,
        printf(IPVSADM.expire, Math.floor(s / 60), s % 60),
        state,
        client,
        vip,
        rip,
      );
    expect(r.stdout).toBe(
      printf(IPVSADM.connTitle, 'state', 'source', 'virtual', 'destination') +
        row('TCP', 899, 'ESTABLISHED', '192.0.2.10:40000', '10.0.0.1:80', '127.0.0.1:9002') +
        row('TCP', 300, 'NONE', '192.0.2.10:0', '10.0.0.1:80', '127.0.0.1:9002') +
        row('TCP', 838, 'ESTABLISHED', '192.0.2.11:40001', '10.0.0.1:80', '127.0.0.1:9001') +
        row('TCP', 300, 'NONE', '192.0.2.11:0', '10.0.0.1:80', '127.0.0.1:9001') +
        row('TCP', 777, 'ESTABLISHED', '192.0.2.12:40002', '10.0.0.1:80', '127.0.0.1:9003') +
        row('TCP', 300, 'NONE', '192.0.2.12:0', '10.0.0.1:80', '127.0.0.1:9003') +
        row('UDP', 899, 'UDP', '192.0.2.10:40000', '10.0.0.2:53', '127.0.0.1:5353'),
    );
    const dns = adm('-Lnc', '-u', '10.0.0.2:53').stdout.split('\n');
    expect(dns).toHaveLength(4);
    const json = JSON.parse(adm('-Lnc', '--json').stdout) as { server: string }[];
    expect(json).toHaveLength(7);
    expect(json[0]).toMatchObject({ server: '127.0.0.1:9002', service: 'web', expiresInMs: 899000 });
  });

  it('--stats and --rate print ipvsadm columns: 33 for the service, 9 per number', () => {
    const numbers = (rest: string) => {
      expect(rest.length % 9).toBe(0);
      return (rest.match(/.{9}/g) ?? []).map((cell) => {
        expect(cell).toMatch(/^ *\d+[KMGT]?$/);
        return Number(cell.trim());
      });
    };
    const stats = adm('-Ln', '--stats').stdout.split('\n');
    expect(stats.slice(1, 3).join('\n') + '\n').toBe(
      printf(
        IPVSADM.statsTitle,
        'Prot LocalAddress:Port',
        'Conns',
        'InPkts',
        'OutPkts',
        'InBytes',
        'OutBytes',
      ),
    );
    expect(stats[3]!.slice(0, 33)).toBe(
      printf(IPVSADM.statsService, printf(IPVSADM.svcName, 'TCP', '10.0.0.1:80')),
    );
    expect(numbers(stats[3]!.slice(33))).toHaveLength(5);
    expect(stats[4]!.slice(0, 33)).toBe(printf(IPVSADM.statsDest, '127.0.0.1:9001'));
    const [conns, inPkts] = numbers(stats[4]!.slice(33));
    expect(conns).toBeGreaterThanOrEqual(100);
    expect(inPkts).toBeGreaterThan(0);

    const rate = adm('-Ln', '--rate').stdout.split('\n');
    expect(rate[1]).toBe(
      printf(
        '%-33s %8s %8s %8s %8s %8s',
        'Prot LocalAddress:Port',
        'CPS',
        'InPPS',
        'OutPPS',
        'InBPS',
        'OutBPS',
      ),
    );
    // The stub dataplane opens 1000 connections a second per server.
    const [cps] = numbers(rate[3]!.slice(33));
    expect(cps).toBeGreaterThan(2400);
    expect(cps).toBeLessThan(3600);
    const destLine = rate[4]!;
    expect(destLine.slice(0, 33)).toBe(printf(IPVSADM.statsDest, '127.0.0.1:9001'));
    // CPS, InPPS and OutPPS as %8llu each after a space, then InBPS and OutBPS as large numbers.
    expect(destLine.slice(33, 60)).toMatch(/^(?: [ \d]{7}\d){3}$/);
    const dcps = Number(destLine.slice(33, 42));
    expect(dcps).toBeGreaterThan(800);
    expect(dcps).toBeLessThan(1200);
    expect(numbers(destLine.slice(60))).toHaveLength(2);
    const json = JSON.parse(adm('-Ln', '--rate', '--json').stdout) as { rate: { cps: number } }[];
    expect(json[0]!.rate.cps).toBeGreaterThan(2400);
  });

  it('--timeout prints the idle timeouts as ipvsadm does; --json prints what the API returned', () => {
    expect(adm('-L', '--timeout')).toMatchObject({
      status: 0,
      stdout: printf(IPVSADM.timeout, 900, 120, 300),
    });
    expect(JSON.parse(adm('-L', '--timeout', '--json').stdout)).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    const services = JSON.parse(adm('-Ln', '--json').stdout) as { name: string; servers: unknown[] }[];
    expect(services.map((s) => s.name)).toEqual(['web', 'dns']);
    expect(services[0]!.servers).toHaveLength(3);
  });

  it('-A/-E/-D and -a/-e/-d change services and servers as ipvsadm does; drain takes a server out', async () => {
    const before = await version();
    expect(adm('-A', '-t', '10.0.0.3:8080', '-s', 'rr', '-p')).toMatchObject({
      status: 0,
      stdout: '',
      stderr: '',
    });
    let svc = await api('/api/v1/services/tcp-10.0.0.3-8080');
    expect(svc).toMatchObject({
      protocol: 'tcp',
      virtual: '10.0.0.3:8080',
      scheduler: 'rr',
      persistence: 300,
    });
    expect(adm('-a', '-t', '10.0.0.3:8080', '-r', '127.0.0.1:7001', '-w', '5', '-b').status).toBe(0);
    // A real server without a port takes the service's, as in ipvsadm.
    expect(adm('-a', '-t', '10.0.0.3:8080', '-r', '127.0.0.1').status).toBe(0);
    expect(adm('-e', '-t', '10.0.0.3:8080', '-r', '127.0.0.1:7001', '-w', '9').status).toBe(0);
    expect(adm('-E', '-t', '10.0.0.3:8080', '-s', 'wlc', '-p', '60').status).toBe(0);
    svc = await api('/api/v1/services/tcp-10.0.0.3-8080');
    expect(svc).toMatchObject({ scheduler: 'wlc', persistence: 60 });
    expect(svc.servers.map((s: { server: string; weight: number }) => [s.server, s.weight])).toEqual([
      ['127.0.0.1:7001', 9],
      ['127.0.0.1:8080', 1],
    ]);

    expect(
      fulcrumSync(dir, ['adm', 'drain', 'tcp-10.0.0.3-8080', '127.0.0.1:7001'], { FULCRUM_ADMIN: admin })
        .status,
    ).toBe(0);
    const drained = JSON.parse(adm('drain', '10.0.0.3:8080', '127.0.0.1:8080', '--json').stdout);
    expect(drained).toMatchObject({ updated: ['tcp-10.0.0.3-8080'] });
    svc = await api('/api/v1/services/tcp-10.0.0.3-8080');
    expect(svc.servers.map((s: { draining: boolean; weight: number }) => [s.draining, s.weight])).toEqual([
      [true, 0],
      [true, 0],
    ]);
    expect(adm('-Ln', '-t', '10.0.0.3:8080').stdout).toContain(
      printf(IPVSADM.dest, '127.0.0.1:7001', 'FullNat', 0, 1, 0) + ' draining\n',
    );

    expect(adm('-d', '-t', '10.0.0.3:8080', '-r', '127.0.0.1:8080').status).toBe(0);
    expect((await api('/api/v1/services/tcp-10.0.0.3-8080')).servers).toHaveLength(1);
    expect(adm('-D', '-t', '10.0.0.3:8080').status).toBe(0);
    expect(adm('-A', '-u', '[2001:db8::1]:53', '-s', 'rr').status).toBe(0);
    expect(await api('/api/v1/services/udp-2001_db8__1-53')).toMatchObject({ virtual: '[2001:db8::1]:53' });
    expect(adm('-A', '-t', '10.0.0.4:80', '--name', 'api').status).toBe(0);
    expect(adm('-D', '-u', '[2001:db8::1]:53').status).toBe(0);
    expect(adm('-D', '-t', '10.0.0.4:80').status).toBe(0);
    expect((await api('/api/v1/services')).map((s: { name: string }) => s.name)).toEqual(['web', 'dns']);
    expect(await version()).toBe(before + 13);
  });

  it('refuses bad input with a clear message and a non-zero exit, and changes nothing', async () => {
    const before = await version();
    const cases: [string[], number, RegExp][] = [
      [['--colour'], 2, /Unknown option '--colour'/],
      [['-A', '-t', '10.0.0.300:80'], 2, /-t 10\.0\.0\.300:80: expected an address and port/],
      [['-A', '-t', '10.0.0.5'], 2, /expected an address and port/],
      [['-A'], 2, /-A needs a service: -t VIP:port or -u VIP:port/],
      [['-A', '-D', '-t', '10.0.0.1:80'], 2, /one command at a time: -A and -D/],
      [
        ['-a', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001', '-w', 'heavy'],
        2,
        /-w heavy: expected an integer from 0 to 65535/,
      ],
      [['-a', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001', '-w', '70000'], 2, /-w 70000/],
      [['-a', '-t', '10.0.0.1:80'], 2, /-a needs a real server: -r RIP:port/],
      [['-a', '-t', '10.0.0.1:80', '-r', 'backend-7'], 2, /-r backend-7: expected an address and port/],
      [['-a', '-m', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001'], 2, /FULLNAT only/],
      [['-E', '-t', '10.0.0.1:80'], 2, /-E needs something to change/],
      [
        ['-a', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001', '-s', 'rr'],
        2,
        /--scheduler cannot be used with -a \(add-server\)/,
      ],
      [['-Ln', '-w', '3'], 2, /--weight cannot be used with -L \(list\)/],
      [['drain', 'web', '127.0.0.1:9001', '-t', '10.0.0.1:80'], 2, /--tcp-service cannot be used with drain/],
      [['-L', '--stats', '--rate'], 2, /one listing at a time/],
      [['frob'], 2, /unexpected argument "frob"/],
      [['drain', 'web'], 2, /usage: fulcrum adm drain <service> <server>/],
      [['--admin', 'nowhere'], 2, /--admin nowhere: expected HOST:PORT/],
      [
        ['-a', '-t', '10.0.0.9:80', '-r', '127.0.0.1:7001'],
        1,
        /FULCRUM_SERVICE_NOT_FOUND: No such service: TCP 10\.0\.0\.9:80/,
      ],
      [
        ['-d', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001'],
        1,
        /FULCRUM_SERVER_NOT_FOUND: service "web" has no real server 127\.0\.0\.1:7001/,
      ],
      [
        ['-a', '-t', '10.0.0.1:80', '-r', '127.0.0.1:9001'],
        1,
        /FULCRUM_CONFIG_INVALID: .*duplicate real server/,
      ],
      [['-A', '-t', '10.0.0.1:80', '--name', 'web'], 1, /FULCRUM_CONFIG_INVALID/],
      [
        ['-A', '-t', '10.0.0.6:80', '-s', 'nope'],
        1,
        /FULCRUM_PLUGIN_NOT_FOUND: .*no scheduler plugin "nope"/,
      ],
      [['drain', 'nope', '127.0.0.1:9001'], 1, /FULCRUM_SERVICE_NOT_FOUND/],
      [['-Ln', '-t', '10.0.0.9:80'], 1, /No such service: TCP 10\.0\.0\.9:80/],
    ];
    for (const [args, status, message] of cases) {
      const r = adm(...args);
      expect({ args, status: r.status }).toEqual({ args, status });
      expect(r.stderr).toMatch(message);
      expect(r.stdout).toBe('');
    }
    const closed = await freePort();
    const unreachable = fulcrumSync(dir, ['adm', '-Ln', '--admin', `127.0.0.1:${closed}`]);
    expect(unreachable.status).toBe(1);
    expect(unreachable.stderr).toMatch(
      /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
    );
    expect(await version()).toBe(before);
  });

  it('prints its help', () => {
    expect(adm('--help')).toMatchObject({
      status: 0,
      stdout: expect.stringContaining('fulcrum adm -L|-l [-n]'),
    });
  });
});

describe('fulcrum adm with a token', () => {
  const dir2 = dir;
  it('sends $FULCRUM_ADMIN_TOKEN or --token-file; a wrong token changes nothing and exits 1', async () => {
    const port = await freePort();
    const admin = `127.0.0.1:${port}`;
    const file = join(dir2, 'adm-token.yaml');
    writeFileSync(file, config(port));
    const d = startDaemon(dir2, file, shared, { FULCRUM_ADMIN_TOKEN: 'letmein' });
    await d.waitFor('started');
    const add = ['adm', '--admin', admin, '-a', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001'];
    const none = fulcrumSync(dir2, add);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(
      /FULCRUM_ADMIN_UNAUTHORIZED: this request changes state: send Authorization: Bearer <token>/,
    );
    const wrong = fulcrumSync(dir2, add, { FULCRUM_ADMIN_TOKEN: 'letmeout' });
    expect(wrong).toMatchObject({ status: 1, stderr: expect.stringContaining('the bearer token is wrong') });
    // Listing needs no token.
    expect(fulcrumSync(dir2, ['adm', '--admin', admin, '-Ln']).status).toBe(0);
    expect(((await getJson(`http://${admin}/healthz`)) as { configVersion: number }).configVersion).toBe(1);

    expect(fulcrumSync(dir2, add, { FULCRUM_ADMIN_TOKEN: 'letmein' }).status).toBe(0);
    writeFileSync(join(dir2, 'adm.token'), 'letmein\n');
    const del = ['adm', '--admin', admin, '-d', '-t', '10.0.0.1:80', '-r', '127.0.0.1:7001'];
    expect(fulcrumSync(dir2, [...del, '--token-file', 'adm.token']).status).toBe(0);
    expect(fulcrumSync(dir2, [...del, '--token-file', 'missing.token'])).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('--token-file missing.token: ENOENT'),
    });
    expect(((await getJson(`http://${admin}/healthz`)) as { configVersion: number }).configVersion).toBe(3);
    expect(await d.stop()).toBe(0);
  });
});
