import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { freePort, fulcrumSync, startDaemon as startRun } from './daemon.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-cli-'));
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// A real plugin package beside the config, as a user would install one: a dataplane that
// owns a TCP listener per service (so start/stop are observable from outside) and rr.
const pkgDir = join(dir, 'node_modules', 'fulcrum-probe');
mkdirSync(pkgDir, { recursive: true });
writeFileSync(
  join(pkgDir, 'package.json'),
  JSON.stringify({
    name: 'fulcrum-probe',
    version: '1.0.0',
    type: 'module',
    exports: { '.': { import: './index.mjs' } },
  }),
);
writeFileSync(
  join(pkgDir, 'index.mjs'),
  `import { createServer } from 'node:net';
export const probe = {
  kind: 'dataplane', name: 'probe', kernel: '^0.1.0', capabilities: ['tcp'],
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => {
    const servers = new Map();
    const listen = (s) => new Promise((ok, fail) => { const srv = createServer((c) => c.end(s.realServers.map((r) => r.key + '=' + r.weight).join(',') + '\\n')); srv.once('error', fail); srv.listen(s.listen.port, s.listen.address, () => { servers.set(s.name, srv); ok(); }); });
    return {
      start: async () => {},
      apply: async (ch) => {
        for (const n of ch.removed) { servers.get(n)?.close(); servers.delete(n); }
        for (const s of ch.added) await listen(s);
        for (const s of ch.updated) { servers.get(s.name)?.close(); servers.delete(s.name); await listen(s); }
      },
      stop: async () => { for (const s of servers.values()) s.close(); servers.clear(); },
    };
  },
};
// A dataplane whose stop() takes stopMs, declaring graceMs of it as its soft-stop grace.
export const slowstop = {
  kind: 'dataplane', name: 'slowstop', kernel: '^0.1.0', capabilities: ['tcp'],
  optionsSchema: { type: 'object', additionalProperties: false, properties: { stopMs: { type: 'number' }, graceMs: { type: 'number' } } },
  create: (ctx, o) => ({
    stopGraceMs: o.graceMs ?? 0,
    start: async () => {},
    apply: async () => {},
    stop: () => new Promise((ok) => setTimeout(ok, o.stopMs ?? 0)),
  }),
};
export const rr = {
  kind: 'scheduler', name: 'rr', kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (v) => ({ kind: 'sequence', sequence: v.realServers.filter((r) => r.weight > 0).map((r) => r.index) }) }),
};
`,
);

function config(
  servicePort: number,
  adminPort: number,
  servers = ['127.0.0.1:9001', '127.0.0.1:9002'],
): string {
  return `plugins: [fulcrum-probe]
dataplane: probe
admin: { listen: 127.0.0.1:${adminPort} }
services:
  - name: web
    listen: 127.0.0.1:${servicePort}
    scheduler: rr
    realServers:
${servers.map((s) => `      - { address: ${s} }`).join('\n')}
`;
}

const fulcrum = (...args: string[]) => fulcrumSync(dir, args);

/** Reads a line from the service listener: the servers the dataplane was given. */
function ask(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1');
    let data = '';
    c.on('data', (d) => (data += d));
    c.on('end', () => resolve(data.trim()));
    c.on('error', reject);
  });
}

const startDaemon = (file: string) => startRun(dir, file, children);

describe('fulcrum CLI', () => {
  it('prints its version and help, and refuses bad usage with exit code 2', () => {
    expect(fulcrum('--version')).toMatchObject({ status: 0, stdout: 'fulcrum 0.1.0\n' });
    expect(fulcrum('--help')).toMatchObject({
      status: 0,
      stdout: expect.stringContaining('Usage: fulcrum <command>'),
    });
    expect(fulcrum('--help').stdout).toContain('adm [options]         ipvsadm over the admin API');
    expect(fulcrum()).toMatchObject({ status: 2, stderr: expect.stringContaining('Usage: fulcrum') });
    expect(fulcrum('frob')).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('unknown command "frob"'),
    });
    expect(fulcrum('validate')).toMatchObject({
      status: 2,
      stderr: expect.stringContaining('needs a config file'),
    });
    expect(fulcrum('validate', 'a.yaml', '--colour')).toMatchObject({
      status: 2,
      stderr: expect.stringContaining("Unknown option '--colour'"),
    });
    expect(fulcrum('run', 'a.yaml', '--log-format', 'xml')).toMatchObject({ status: 2 });
  });

  it('validates: exit 0 with a summary, exit 3 with every problem located', () => {
    writeFileSync(join(dir, 'good.yaml'), config(8080, 9100));
    expect(fulcrum('validate', 'good.yaml')).toMatchObject({
      status: 0,
      stdout: 'good.yaml: valid (1 service, 2 real servers, dataplane probe)\n',
    });
    writeFileSync(
      join(dir, 'bad.yaml'),
      config(8080, 9100, ['127.0.0.1:9001', '127.0.0.1:99999']).replace(
        'scheduler: rr',
        'scheduler: rr\n    weight: 3',
      ),
    );
    const bad = fulcrum('validate', 'bad.yaml');
    expect(bad.status).toBe(3);
    expect(bad.stderr).toBe(
      [
        'bad.yaml:8:5 services[0].weight: unknown key "weight" (allowed: name, protocol, listen, scheduler, persistence, passthrough, synproxy, healthChecks, onFailure, drain, maxConnections, quorum, hysteresis, sorryServer, notify, localAddresses, realServers)',
        'bad.yaml:11:11 services[0].realServers[1].address: must be an address and port, such as 127.0.0.1:8080 or [::1]:8080',
        'error FULCRUM_CONFIG_INVALID: the configuration is invalid (2 problems)',
        '',
      ].join('\n'),
    );
    expect(fulcrum('validate', 'nothing-here.yaml')).toMatchObject({
      status: 3,
      stderr: expect.stringMatching(/^error FULCRUM_CONFIG_READ: cannot read config nothing-here.yaml/),
    });
  });

  it('prints the assembled JSON Schema, with the options schemas of the plugins a config names', () => {
    const r = fulcrum('schema', 'good.yaml');
    expect(r.status).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.title).toBe('Fulcrum configuration');
    expect(JSON.stringify(schema.properties.dataplane.allOf)).toContain('"enum":["probe"]');
  });

  it('runs: serves, reloads on SIGHUP (and keeps running on a broken reload), stops cleanly on SIGTERM', async () => {
    const [svcPort, adminPort] = [await freePort(), await freePort()];
    const file = join(dir, 'run.yaml');
    writeFileSync(file, config(svcPort, adminPort));
    const d = await startDaemon(file);
    const started = await d.waitFor('started');
    expect(started).toMatchObject({ services: ['web'], admin: `127.0.0.1:${adminPort}` });
    expect(await ask(svcPort)).toBe('127.0.0.1:9001=1,127.0.0.1:9002=1');

    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    expect(metrics).toMatch(/^fulcrum_config_version 1$/m);
    expect(metrics).toMatch(/^fulcrum_server_weight\{service="web",server="127.0.0.1:9002"\} 1$/m);
    const services = (await (await fetch(`http://127.0.0.1:${adminPort}/api/v1/services`)).json()) as {
      name: string;
    }[];
    expect(services.map((s) => s.name)).toEqual(['web']);
    expect((await fetch(`http://127.0.0.1:${adminPort}/nope`)).status).toBe(404);

    writeFileSync(file, config(svcPort, adminPort, ['127.0.0.1:9001', '127.0.0.1:9003']));
    d.child.kill('SIGHUP');
    expect(await d.waitFor('reloaded')).toMatchObject({ version: 2, updated: ['web'] });
    expect(await ask(svcPort)).toBe('127.0.0.1:9001=1,127.0.0.1:9003=1');

    writeFileSync(file, config(svcPort, adminPort).replace('scheduler: rr', 'scheduler: nope'));
    d.child.kill('SIGHUP');
    const rejected = await d.waitFor('reload_rejected');
    expect(rejected.code).toBe('FULCRUM_PLUGIN_NOT_FOUND');
    expect(String((rejected.issues as string[])[0])).toMatch(
      /run\.yaml:7:5 services\[0\]\.scheduler\.name: no scheduler plugin "nope"/,
    );
    expect(await ask(svcPort)).toBe('127.0.0.1:9001=1,127.0.0.1:9003=1');

    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    expect(d.lines.map((l) => l.event)).toContain('stopped');
    await expect(ask(svcPort)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fulcrum reload re-reads the config over the admin API, and a broken file changes nothing', async () => {
    const [svcPort, adminPort] = [await freePort(), await freePort()];
    const file = join(dir, 'reload.yaml');
    writeFileSync(file, config(svcPort, adminPort));
    const d = await startDaemon(file);
    await d.waitFor('started');
    writeFileSync(file, config(svcPort, adminPort, ['127.0.0.1:9005']));
    const ok = fulcrum('reload', '--admin', `127.0.0.1:${adminPort}`);
    expect(ok.status, ok.stderr).toBe(0);
    expect(await ask(svcPort)).toBe('127.0.0.1:9005=1');
    writeFileSync(file, 'services: [ oops\n');
    const bad = fulcrum('reload', '--admin', `127.0.0.1:${adminPort}`);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/FULCRUM_CONFIG_PARSE/);
    expect(await ask(svcPort)).toBe('127.0.0.1:9005=1');
    expect(fulcrum('reload', 'now', '--admin', `127.0.0.1:${adminPort}`).status).toBe(2);
    d.child.kill('SIGTERM');
    expect(await d.exited).toBe(0);
  });

  it("waits for the dataplane's declared stop grace before forcing a stop, and forces one beyond it", async () => {
    // Both stop in 11 s, beyond the daemon's own 10 s deadline; one declares 11 s of grace.
    const port = await freePort();
    const slow = (graceMs: number) => {
      const file = join(dir, `slowstop-${graceMs}.yaml`);
      writeFileSync(
        file,
        `plugins: [fulcrum-probe]\ndataplane: { name: slowstop, options: { stopMs: 11000, graceMs: ${graceMs} } }\nservices:\n  - { name: web, listen: 127.0.0.1:${port}, scheduler: rr, realServers: [{ address: 127.0.0.1:9001 }] }\n`,
      );
      return startDaemon(file);
    };
    const [graceful, forced] = [slow(11_000), slow(0)];
    await Promise.all([graceful.waitFor('started'), forced.waitFor('started')]);
    const t0 = Date.now();
    graceful.child.kill('SIGTERM');
    forced.child.kill('SIGTERM');
    const [g, f] = await Promise.all([
      graceful.exited.then((code) => ({ code, ms: Date.now() - t0 })),
      forced.exited.then((code) => ({ code, ms: Date.now() - t0 })),
    ]);
    expect(f.code, forced.stderr()).toBe(130);
    expect(forced.lines.find((l) => l.event === 'stop_timeout')).toMatchObject({ deadlineMs: 10_000 });
    expect(g.code, graceful.stderr()).toBe(0);
    expect(g.ms).toBeGreaterThanOrEqual(11_000);
    expect(graceful.lines.map((l) => l.event)).toContain('stopped');
  }, 30_000);

  it('exits 1 when the admin address is taken, and 3 when the config is invalid at start', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const file = join(dir, 'taken.yaml');
    writeFileSync(file, config(await freePort(), (taken.address() as AddressInfo).port));
    const d = await startDaemon(file);
    expect(await d.exited).toBe(1);
    expect(d.stderr()).toMatch(/EADDRINUSE/);
    taken.close();

    writeFileSync(file, 'services: [ { name: x } ]\n');
    const bad = await startDaemon(file);
    expect(await bad.exited).toBe(3);
    expect(bad.stderr()).toMatch(/services\[0\]: missing required key "listen"/);
  });
});
