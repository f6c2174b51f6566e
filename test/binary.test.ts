import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The prebuilt reference binary: built the way `npm run build:binary` builds it, then run
// from a directory with no node_modules and no npm, as a user who downloaded it would.
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-binary-'));
const bin = join(dir, 'fulcrum');
const servers: Server[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  rmSync(dir, { recursive: true, force: true });
});

beforeAll(() => {
  execFileSync(process.execPath, [join(root, 'packages', 'fulcrum', 'scripts', 'build-binary.mjs')], {
    stdio: 'pipe',
  });
  copyFileSync(join(root, 'packages', 'fulcrum', 'binary', 'fulcrum'), bin);
  execFileSync('chmod', ['+x', bin]);
}, 120_000);

const fulcrum = (...args: string[]) =>
  spawnSync(bin, args, { cwd: dir, encoding: 'utf8', timeout: 20_000, env: { PATH: '/usr/bin:/bin' } });

async function port(server?: Server): Promise<number> {
  const s = server ?? createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  if (!server) await new Promise((r) => s.close(r));
  return p;
}

const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d)).on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });

describe('the single-binary daemon, with no node_modules', () => {
  it('prints its version and validates the demo config with its bundled plugins', () => {
    expect(fulcrum('--version')).toMatchObject({ status: 0, stdout: 'fulcrum 0.1.0\n' });
    copyFileSync(join(root, 'examples', 'basic', 'fulcrum.yaml'), join(dir, 'demo.yaml'));
    expect(fulcrum('validate', 'demo.yaml')).toMatchObject({
      status: 0,
      stdout: 'demo.yaml: valid (1 service, 3 real servers, dataplane socket)\n',
    });
    expect(fulcrum('validate', 'nope.yaml').status).toBe(3);
  });

  it('balances: wrr over three backends with HTTP and passive checks, and stops cleanly', async () => {
    const backends: number[] = [];
    for (const name of ['one', 'two', 'three']) {
      const s = createServer((_req, res) => res.end(name));
      servers.push(s);
      backends.push(await port(s));
    }
    const [vip, admin] = [await port(), await port()];
    writeFileSync(
      join(dir, 'run.yaml'),
      `dataplane: socket
admin: { listen: 127.0.0.1:${admin} }
services:
  - name: web
    listen: 127.0.0.1:${vip}
    scheduler: wrr
    healthChecks: [ { name: http, options: { interval: 1s } }, passive ]
    realServers:
${backends.map((p, i) => `      - { address: 127.0.0.1:${p}, weight: ${3 - i} }`).join('\n')}
`,
    );
    const daemon = spawn(bin, ['run', 'run.yaml', '--log-format', 'json'], {
      cwd: dir,
      env: { PATH: '/usr/bin:/bin' },
    });
    let log = '';
    daemon.stdout.on('data', (d) => (log += d));
    daemon.stderr.on('data', (d) => (log += d));
    try {
      const end = Date.now() + 10_000;
      while (!log.includes('"event":"started"')) {
        if (Date.now() > end || daemon.exitCode !== null)
          throw new Error(`the binary did not start:\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) answers.push(await get(`http://127.0.0.1:${vip}/`));
      expect(answers).toEqual(['one', 'one', 'two', 'one', 'two', 'three']);
      expect(await get(`http://127.0.0.1:${admin}/metrics`)).toMatch(/^fulcrum_config_version 1$/m);
    } finally {
      daemon.kill('SIGTERM');
    }
    await new Promise((r) => daemon.on('exit', r));
    expect(daemon.exitCode).toBe(0);
  }, 30_000);
});
