import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  allChecked,
  freePort,
  startDaemon,
  STUB_TIMEOUTS,
  until,
  writeStubPlugins,
  type Daemon,
} from './daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-admin-'));
writeStubPlugins(dir);
const children: ChildProcess[] = [];
/** Daemons shared by the tests of a describe block; stopped in its afterAll, killed here if not. */
const shared: ChildProcess[] = [];
const kill = (list: ChildProcess[]) => {
  for (const c of list.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
};
afterEach(() => kill(children));
afterAll(() => {
  kill(shared);
  rmSync(dir, { recursive: true, force: true });
});

function config(
  adminPort: number,
  extra = '',
  servers = ['127.0.0.1:9001', '127.0.0.1:9002', '127.0.0.1:9003'],
) {
  return `plugins: [fulcrum-stub]
dataplane: { name: stub, ${STUB_TIMEOUTS} }
admin: { listen: 127.0.0.1:${adminPort}${extra} }
services:
  - name: web
    listen: 10.0.0.1:80
    scheduler: rr
    persistence: { timeout: 300 }
    healthChecks: [port9003]
    realServers:
${servers.map((s) => `      - { address: ${s} }`).join('\n')}
`;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** One HTTP request with full control of headers and body (fetch adds its own). */
function http(
  port: number,
  method: string,
  path: string,
  options: { body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers: options.headers ?? {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        resolve({ status: res.statusCode!, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

const jsonBody = (value: unknown, headers: Record<string, string> = {}) => ({
  body: JSON.stringify(value),
  headers: { 'content-type': 'application/json', ...headers },
});

describe('admin API, reads', () => {
  let d: Daemon;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    const file = join(dir, 'reads.yaml');
    writeFileSync(file, config(port));
    d = startDaemon(dir, file, shared);
    await d.waitFor('started');
    await until(allChecked(`127.0.0.1:${port}`));
  });
  afterAll(async () => {
    expect(await d.stop()).toBe(0);
  });

  it('reports health, the applied config and its version, and the dataplane timeouts', async () => {
    expect((await http(port, 'GET', '/healthz')).body).toEqual({
      status: 'ok',
      version: '0.1.0',
      configVersion: 1,
    });
    const cfg = await http(port, 'GET', '/api/v1/config');
    expect(cfg.body.version).toBe(1);
    expect(cfg.body.config.services[0]).toMatchObject({ name: 'web', listen: '10.0.0.1:80' });
    expect((await http(port, 'GET', '/api/v1/timeouts')).body).toEqual({ tcp: 900, tcpFin: 120, udp: 300 });
    expect((await http(port, 'GET', '/metrics')).body).toMatch(/^fulcrum_config_version 1$/m);
  });

  it('lists services with configured and effective weights, health and its reason, and live counters', async () => {
    const list = await http(port, 'GET', '/api/v1/services');
    expect(list.status).toBe(200);
    expect(list.body).toHaveLength(1);
    const web = list.body[0];
    expect(web).toMatchObject({
      name: 'web',
      protocol: 'tcp',
      virtual: '10.0.0.1:80',
      scheduler: 'rr',
      persistence: 300,
      plan: 'sequence',
      liveConns: 3,
      retiring: false,
    });
    expect(web.servers.map((s: { server: string }) => s.server)).toEqual([
      '127.0.0.1:9001',
      '127.0.0.1:9002',
      '127.0.0.1:9003',
    ]);
    expect(web.servers[0]).toMatchObject({
      weight: 1,
      configuredWeight: 1,
      health: 'up',
      healthReason: 'port9003: connected',
      draining: false,
      activeConns: 1,
      inactiveConns: 0,
    });
    expect(web.servers[2]).toMatchObject({
      weight: 0,
      configuredWeight: 1,
      health: 'down',
      healthReason: 'port9003: connection refused',
      activeConns: 3,
      inactiveConns: 4,
    });
    expect(web.servers[1].stats.conns).toBeGreaterThanOrEqual(100);
    expect(web.stats.conns).toBe(
      web.servers.reduce((n: number, s: { stats: { conns: number } }) => n + s.stats.conns, 0),
    );

    const one = await http(port, 'GET', '/api/v1/services/web');
    expect(one.body).toMatchObject({ name: 'web', virtual: '10.0.0.1:80' });
    const missing = await http(port, 'GET', '/api/v1/services/nope');
    expect(missing).toMatchObject({
      status: 404,
      body: { code: 'FULCRUM_SERVICE_NOT_FOUND', message: 'no service named "nope"' },
    });
  });

  it('pages and filters the connection table', async () => {
    const all = await http(port, 'GET', '/api/v1/connections');
    expect(all.body).toMatchObject({ available: true, total: 6, offset: 0, limit: 100 });
    expect(all.body.connections[0]).toEqual({
      protocol: 'TCP',
      state: 'ESTABLISHED',
      expiresInMs: 899000,
      client: '192.0.2.10:40000',
      virtual: '10.0.0.1:80',
      server: '127.0.0.1:9001',
      service: 'web',
    });
    const page = await http(port, 'GET', '/api/v1/connections?limit=2&offset=3');
    expect(page.body).toMatchObject({ total: 6, offset: 3, limit: 2 });
    expect(page.body.connections).toEqual(all.body.connections.slice(3, 5));
    const byServer = await http(port, 'GET', '/api/v1/connections?server=127.0.0.1:9002&templates=false');
    expect(byServer.body.connections).toHaveLength(1);
    expect(byServer.body.connections[0].server).toBe('127.0.0.1:9002');
    const byClient = await http(port, 'GET', '/api/v1/connections?client=192.0.2.12');
    expect(byClient.body.connections.map((c: { client: string }) => c.client)).toEqual([
      '192.0.2.12:40002',
      '192.0.2.12:0',
    ]);
    const byClientPort = await http(port, 'GET', '/api/v1/connections?client=192.0.2.12:40002');
    expect(byClientPort.body.total).toBe(1);
    expect((await http(port, 'GET', '/api/v1/connections?service=web')).body.total).toBe(6);
    expect((await http(port, 'GET', '/api/v1/connections?service=nope')).status).toBe(404);
    expect((await http(port, 'GET', '/api/v1/connections?limit=-1')).body.code).toBe(
      'FULCRUM_ADMIN_BAD_REQUEST',
    );
    expect((await http(port, 'GET', '/api/v1/connections?limit=10001')).status).toBe(400);
    expect((await http(port, 'GET', '/api/v1/connections?server=nowhere')).status).toBe(400);
  });

  it('serves a valid OpenAPI 3.1 document that describes every endpoint', async () => {
    const doc = (await http(port, 'GET', '/openapi.json')).body;
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    const ops = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, item]) =>
      Object.keys(item)
        .filter((k) => k !== 'parameters')
        .map((m) => `${m.toUpperCase()} ${p}`),
    );
    expect(ops.sort()).toEqual(
      [
        'GET /healthz',
        'GET /metrics',
        'GET /openapi.json',
        'GET /api/v1/services',
        'POST /api/v1/services',
        'GET /api/v1/services/{service}',
        'PATCH /api/v1/services/{service}',
        'DELETE /api/v1/services/{service}',
        'POST /api/v1/services/{service}/servers',
        'PATCH /api/v1/services/{service}/servers/{server}',
        'DELETE /api/v1/services/{service}/servers/{server}',
        'PUT /api/v1/services/{service}/servers/{server}/weight',
        'POST /api/v1/services/{service}/servers/{server}/drain',
        'GET /api/v1/connections',
        'GET /api/v1/config',
        'GET /api/v1/timeouts',
        'POST /api/v1/reload',
      ].sort(),
    );
    // What the API answers has the fields the document declares, and no others.
    const conforms = (value: Record<string, unknown>, schema: string) => {
      const s = doc.components.schemas[schema] as { required: string[]; properties: Record<string, unknown> };
      expect(Object.keys(value).filter((k) => !(k in s.properties))).toEqual([]);
      expect(s.required.filter((k) => !(k in value))).toEqual([]);
    };
    const [web] = (await http(port, 'GET', '/api/v1/services')).body;
    conforms(web, 'ServiceStatus');
    for (const server of web.servers) conforms(server, 'ServerStatus');
    conforms(web.stats, 'Stats');
    const page = (await http(port, 'GET', '/api/v1/connections')).body;
    conforms(page, 'ConnectionPage');
    for (const c of page.connections) conforms(c, 'Connection');
    conforms((await http(port, 'GET', '/healthz')).body, 'Health');
    conforms((await http(port, 'GET', '/api/v1/timeouts')).body, 'Timeouts');
    conforms((await http(port, 'GET', '/api/v1/services/nope')).body, 'Error');
    // The request bodies are the kernel's own schemas.
    expect(doc.components.schemas.ServiceInput.required).toEqual(['name', 'listen']);
    expect(doc.components.schemas.RealServerInput.properties.weight.maximum).toBe(65535);
  });

  it('answers unknown paths with 404 and wrong methods with 405 and Allow', async () => {
    expect((await http(port, 'GET', '/nope')).body.code).toBe('FULCRUM_ADMIN_NOT_FOUND');
    const wrong = await http(port, 'PUT', '/api/v1/services');
    expect(wrong).toMatchObject({ status: 405, body: { code: 'FULCRUM_ADMIN_METHOD' } });
    expect(wrong.headers.allow).toBe('GET, POST');
    expect((await http(port, 'DELETE', '/metrics')).status).toBe(405);
  });
});

describe('admin API, writes', () => {
  let d: Daemon;
  let port: number;
  let file: string;
  const version = async () => (await http(port, 'GET', '/healthz')).body.configVersion as number;
  beforeAll(async () => {
    port = await freePort();
    file = join(dir, 'writes.yaml');
    writeFileSync(file, config(port));
    d = startDaemon(dir, file, shared);
    await d.waitFor('started');
  });
  afterAll(async () => {
    expect(await d.stop()).toBe(0);
  });

  it('adds, changes and removes services and servers, each a new config version', async () => {
    const added = await http(
      port,
      'POST',
      '/api/v1/services',
      jsonBody({ name: 'dns', protocol: 'udp', listen: '10.0.0.2:53', scheduler: 'rr' }),
    );
    expect(added).toMatchObject({
      status: 201,
      body: { version: 2, added: ['dns'], service: { name: 'dns', servers: [] } },
    });
    const rs = await http(
      port,
      'POST',
      '/api/v1/services/dns/servers',
      jsonBody({ address: '127.0.0.1:5353', weight: 3 }),
    );
    expect(rs).toMatchObject({ status: 201, body: { version: 3, updated: ['dns'] } });
    expect(rs.body.service.servers[0]).toMatchObject({
      server: '127.0.0.1:5353',
      weight: 3,
      configuredWeight: 3,
    });

    const w = await http(
      port,
      'PUT',
      '/api/v1/services/dns/servers/127.0.0.1%3A5353/weight',
      jsonBody({ weight: 7 }),
    );
    expect(w.body.service.servers[0]).toMatchObject({ weight: 7 });
    const patched = await http(
      port,
      'PATCH',
      '/api/v1/services/dns/servers/127.0.0.1:5353',
      jsonBody({ weight: 2 }),
    );
    expect(patched.body.service.servers[0]).toMatchObject({ weight: 2 });
    const drained = await http(port, 'POST', '/api/v1/services/dns/servers/127.0.0.1:5353/drain');
    expect(drained.body.service.servers[0]).toMatchObject({ weight: 0, configuredWeight: 2, draining: true });
    const undrained = await http(
      port,
      'PATCH',
      '/api/v1/services/dns/servers/127.0.0.1:5353',
      jsonBody({ drain: null }),
    );
    expect(undrained.body.service.servers[0]).toMatchObject({ weight: 2, draining: false });

    const svc = await http(
      port,
      'PATCH',
      '/api/v1/services/web',
      jsonBody({ persistence: null, scheduler: 'wlc' }),
    );
    expect(svc.body.service).toMatchObject({ scheduler: 'wlc' });
    expect(svc.body.service.persistence).toBeUndefined();

    const gone = await http(port, 'DELETE', '/api/v1/services/dns/servers/127.0.0.1:5353');
    expect(gone.body.service.servers).toEqual([]);
    const removed = await http(port, 'DELETE', '/api/v1/services/dns');
    expect(removed.body).toMatchObject({ removed: ['dns'] });
    expect(await version()).toBe(10);
    const cfg = (await http(port, 'GET', '/api/v1/config')).body;
    expect(cfg.config.services.map((s: { name: string }) => s.name)).toEqual(['web']);
    expect(cfg.config.services[0].persistence).toBeUndefined();
  });

  it('reloads the config file as SIGHUP does, and rejects a broken one whole', async () => {
    const before = await version();
    writeFileSync(file, config(port, '', ['127.0.0.1:9001']));
    const ok = await http(port, 'POST', '/api/v1/reload');
    expect(ok).toMatchObject({ status: 200, body: { version: before + 1, updated: ['web'] } });
    expect(d.lines.some((l) => l.event === 'reloaded' && l.trigger === 'api')).toBe(true);

    // The admin listener and token are settled at start: a reload that changes them says so.
    writeFileSync(join(dir, 'later.token'), 'later\n');
    writeFileSync(file, config(port, ', tokenFile: later.token', ['127.0.0.1:9001']));
    expect((await http(port, 'POST', '/api/v1/reload')).body).toMatchObject({
      version: before + 2,
      updated: [],
    });
    await d.waitFor('admin_unchanged');

    writeFileSync(file, config(port).replace('scheduler: rr', 'scheduler: nope'));
    const bad = await http(port, 'POST', '/api/v1/reload');
    expect(bad).toMatchObject({ status: 400, body: { code: 'FULCRUM_PLUGIN_NOT_FOUND' } });
    expect(bad.body.issues[0]).toMatchObject({ path: 'services[0].scheduler.name' });
    expect(await version()).toBe(before + 2);
  });

  it('refuses bad requests with a code and a status, and changes nothing', async () => {
    const before = await version();
    const cases: [
      string,
      string,
      { body?: string | Buffer; headers?: Record<string, string> },
      number,
      string,
    ][] = [
      [
        'POST',
        '/api/v1/services',
        { body: '{"name":"x"', headers: { 'content-type': 'application/json' } },
        400,
        'FULCRUM_ADMIN_BAD_JSON',
      ],
      [
        'POST',
        '/api/v1/services',
        { body: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } },
        415,
        'FULCRUM_ADMIN_MEDIA_TYPE',
      ],
      ['POST', '/api/v1/services', { body: '{}' }, 415, 'FULCRUM_ADMIN_MEDIA_TYPE'],
      ['POST', '/api/v1/services', jsonBody([1, 2]), 400, 'FULCRUM_ADMIN_BAD_REQUEST'],
      [
        'POST',
        '/api/v1/services',
        { body: Buffer.alloc(2 * 1024 * 1024, 32), headers: { 'content-type': 'application/json' } },
        413,
        'FULCRUM_ADMIN_TOO_LARGE',
      ],
      [
        'POST',
        '/api/v1/services',
        jsonBody({ name: 'x', listen: '10.0.0.9:99999' }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'POST',
        '/api/v1/services',
        jsonBody({ name: 'web', listen: '10.0.0.9:80' }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'POST',
        '/api/v1/services',
        jsonBody({ name: 'x', listen: '10.0.0.9:80', scheduler: 'nope' }),
        400,
        'FULCRUM_PLUGIN_NOT_FOUND',
      ],
      ['PATCH', '/api/v1/services/nope', jsonBody({ scheduler: 'rr' }), 404, 'FULCRUM_SERVICE_NOT_FOUND'],
      ['PATCH', '/api/v1/services/web', jsonBody({ colour: 'red' }), 400, 'FULCRUM_CONFIG_INVALID'],
      [
        'POST',
        '/api/v1/services/web/servers',
        jsonBody({ address: '127.0.0.1:9001' }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'POST',
        '/api/v1/services/web/servers',
        jsonBody({ address: 'nowhere' }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'PUT',
        '/api/v1/services/web/servers/127.0.0.1:9001/weight',
        jsonBody({ weight: 'heavy' }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'PUT',
        '/api/v1/services/web/servers/127.0.0.1:9001/weight',
        jsonBody({ weight: 70000 }),
        400,
        'FULCRUM_CONFIG_INVALID',
      ],
      [
        'PUT',
        '/api/v1/services/web/servers/127.0.0.1:9001/weight',
        jsonBody({}),
        400,
        'FULCRUM_ADMIN_BAD_REQUEST',
      ],
      [
        'PUT',
        '/api/v1/services/web/servers/127.0.0.1:9009/weight',
        jsonBody({ weight: 1 }),
        404,
        'FULCRUM_SERVER_NOT_FOUND',
      ],
      ['POST', '/api/v1/services/web/servers/bogus/drain', {}, 400, 'FULCRUM_ADMIN_BAD_REQUEST'],
      ['DELETE', '/api/v1/services/web/servers/127.0.0.1:9009', {}, 404, 'FULCRUM_SERVER_NOT_FOUND'],
      ['DELETE', '/api/v1/services/nope', {}, 404, 'FULCRUM_SERVICE_NOT_FOUND'],
    ];
    for (const [method, path, options, status, code] of cases) {
      const r = await http(port, method, path, options);
      expect({ method, path, status: r.status, code: r.body.code }).toEqual({ method, path, status, code });
      expect(typeof r.body.message).toBe('string');
    }
    const invalid = await http(
      port,
      'POST',
      '/api/v1/services',
      jsonBody({ name: 'x', listen: '10.0.0.9:99999' }),
    );
    expect(invalid.body.message).toBe(
      'services[1].listen: must be an address and port, such as 127.0.0.1:8080 or [::1]:8080',
    );
    expect(invalid.body.issues).toEqual([
      {
        path: 'services[1].listen',
        message: 'must be an address and port, such as 127.0.0.1:8080 or [::1]:8080',
      },
    ]);
    expect(await version()).toBe(before);
  });
});

describe('admin API, token', () => {
  it('needs the bearer token from $FULCRUM_ADMIN_TOKEN for writes, not for reads', async () => {
    const port = await freePort();
    const file = join(dir, 'token-env.yaml');
    writeFileSync(file, config(port));
    const d = startDaemon(dir, file, children, { FULCRUM_ADMIN_TOKEN: 's3cret' });
    expect(await d.waitFor('started')).toMatchObject({ adminToken: true });
    expect((await http(port, 'GET', '/api/v1/services')).status).toBe(200);
    const body = { address: '127.0.0.1:9004' };
    const none = await http(port, 'POST', '/api/v1/services/web/servers', jsonBody(body));
    expect(none).toMatchObject({ status: 401, body: { code: 'FULCRUM_ADMIN_UNAUTHORIZED' } });
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const wrong = await http(
      port,
      'POST',
      '/api/v1/services/web/servers',
      jsonBody(body, { authorization: 'Bearer s3cres' }),
    );
    expect(wrong).toMatchObject({ status: 401, body: { message: 'the bearer token is wrong' } });
    expect((await http(port, 'POST', '/api/v1/reload')).status).toBe(401);
    expect((await http(port, 'GET', '/healthz')).body.configVersion).toBe(1);
    const right = await http(
      port,
      'POST',
      '/api/v1/services/web/servers',
      jsonBody(body, { authorization: 'Bearer s3cret' }),
    );
    expect(right).toMatchObject({ status: 201, body: { version: 2 } });
    expect(await d.stop()).toBe(0);
  });

  it('reads the token from admin.tokenFile, relative to the config', async () => {
    const port = await freePort();
    const file = join(dir, 'token-file.yaml');
    writeFileSync(join(dir, 'admin.token'), 'from-file\n');
    writeFileSync(file, config(port, ', tokenFile: admin.token'));
    const d = startDaemon(dir, file, children, { FULCRUM_ADMIN_TOKEN: 'from-env' });
    await d.waitFor('started');
    const del = (token: string) =>
      http(port, 'DELETE', '/api/v1/services/web', { headers: { authorization: `Bearer ${token}` } });
    expect((await del('from-env')).status).toBe(401);
    expect((await del('from-file')).status).toBe(200);
    expect(await d.stop()).toBe(0);
  });

  it('refuses to start off loopback without a token (exit 3), and with an unreadable token file', async () => {
    const file = join(dir, 'open.yaml');
    // TEST-NET-1: never bound here; the daemon must refuse before trying.
    writeFileSync(file, config(9100).replace('127.0.0.1:9100', '192.0.2.1:9100'));
    const d = startDaemon(dir, file, children);
    expect(await d.exited).toBe(3);
    expect(d.stderr()).toContain(
      'admin.listen: 192.0.2.1 is not a loopback address: set admin.tokenFile or FULCRUM_ADMIN_TOKEN',
    );
    expect(d.lines.map((l) => l.event)).not.toContain('started');

    writeFileSync(file, config(await freePort(), ', tokenFile: missing.token'));
    const m = startDaemon(dir, file, children);
    expect(await m.exited).toBe(3);
    expect(m.stderr()).toMatch(/admin\.tokenFile: cannot read .*missing\.token/);
  });
});
