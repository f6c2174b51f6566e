import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requires } from '@fulcrum/testkit';
import { afterAll, describe, expect, it } from 'vitest';

// Issue 10's reload test: wrk through the daemon while SIGHUP reloads add, change and remove
// servers and a whole service, 20 times. Nothing the reloads keep may see an error.
const root = new URL('..', import.meta.url).pathname;
const bin = join(root, 'packages', 'fulcrum', 'dist', 'bin.js');
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-reload-'));
const servers: Server[] = [];
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await Promise.all(servers.map((s) => (s.closeAllConnections(), new Promise((r) => s.close(r)))));
  rmSync(dir, { recursive: true, force: true });
});

const need = requires({ commands: ['wrk'] });

async function port(server?: Server): Promise<number> {
  const s = server ?? createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as AddressInfo).port;
  if (!server) await new Promise((r) => s.close(r));
  return p;
}

function wrk(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    // 'close', not 'exit': the process may exit before its output has been read.
    c.on('close', () => resolve(out));
  });
}

describe.skipIf(need.skip)(`hot reload under load${need.note}`, () => {
  it('20 reloads during wrk: zero socket errors, every reload applied, the table drains to zero', async () => {
    const backends = await Promise.all(
      ['a', 'b', 'c'].map(async (name) => {
        const s = createServer((_req, res) => res.end(name));
        servers.push(s);
        return `127.0.0.1:${await port(s)}`;
      }),
    );
    const [a, b, c] = backends as [string, string, string];
    const [web, api, admin] = [await port(), await port(), await port()];
    const file = join(dir, 'fulcrum.yaml');
    const config = (
      rs: string,
      extra = '',
    ) => `dataplane: { name: socket, options: { timeouts: { timeWait: 500ms } } }
admin: { listen: 127.0.0.1:${admin} }
services:
  - name: web
    listen: 127.0.0.1:${web}
    scheduler: wrr
    realServers: [${rs}]
${extra}`;
    const apiService = `  - name: api\n    listen: 127.0.0.1:${api}\n    scheduler: rr\n    realServers: [ { address: ${c} } ]\n`;
    // Each step changes something: servers added and removed, weights, a service added and removed.
    const steps = [
      config(`{ address: ${a} }, { address: ${b} }, { address: ${c} }`),
      config(`{ address: ${a}, weight: 3 }, { address: ${b} }, { address: ${c} }`),
      config(`{ address: ${a}, weight: 3 }, { address: ${c} }`),
      config(`{ address: ${a}, weight: 3 }, { address: ${c} }`, apiService),
      config(`{ address: ${a} }, { address: ${b}, weight: 2 }`, apiService),
      config(`{ address: ${a} }, { address: ${b}, weight: 2 }`),
      config(`{ address: ${b} }, { address: ${c} }`),
      config(`{ address: ${a} }, { address: ${b} }`),
    ];
    writeFileSync(file, config(`{ address: ${a} }, { address: ${b} }`));

    const daemon = spawn(process.execPath, [bin, 'run', file, '--log-format', 'json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(daemon);
    let log = '';
    daemon.stdout.on('data', (d) => (log += d));
    daemon.stderr.on('data', (d) => (log += d));
    const until = async (re: RegExp, ms: number) => {
      const end = Date.now() + ms;
      while (!re.test(log)) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re}; log:\n${log.slice(-3000)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(/"event":"started"/, 10_000);

    const url = `http://127.0.0.1:${web}/`;
    const load = Promise.all([
      wrk(['-t1', '-c16', '-d6s', url]), // keep-alive: long-lived connections across reloads
      wrk(['-t1', '-c8', '-d6s', '-H', 'Connection: close', url]), // a new connection per request
    ]);
    for (let i = 0; i < 20; i++) {
      await new Promise((r) => setTimeout(r, 250));
      writeFileSync(file, steps[i % steps.length]!);
      daemon.kill('SIGHUP');
      await until(new RegExp(`"event":"reloaded"[^\\n]*"version":${i + 2}\\b`), 5000);
    }
    const [keepAlive, close] = await load;

    for (const out of [keepAlive, close]) {
      expect(out).toMatch(/requests in/);
      expect(out, out).not.toMatch(/Socket errors/);
      expect(out, out).not.toMatch(/Non-2xx/);
      expect(Number(/(\d+) requests in/.exec(out)![1])).toBeGreaterThan(100);
    }
    expect(log).not.toMatch(/reload_rejected/);

    // Once the load is gone every connection ends: ActiveConn and InActConn return to zero.
    const end = Date.now() + 15_000;
    let metrics: string;
    for (;;) {
      metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const live = [...metrics.matchAll(/^fulcrum_connections_(?:in)?active\{[^}]*\} (\d+)/gm)].reduce(
        (n, m) => n + Number(m[1]),
        0,
      );
      if (live === 0) break;
      if (Date.now() > end) throw new Error(`connections still open:\n${metrics}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(metrics).toMatch(/^fulcrum_config_version 21$/m);
    expect(metrics).toMatch(/^fulcrum_config_applies_total\{result="applied"\} 21$/m);
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.on('exit', r));
    expect(daemon.exitCode).toBe(0);
  }, 60_000);
});
