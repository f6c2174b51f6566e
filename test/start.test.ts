import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createConnection } from 'node:net';
import { describe, expect, it } from 'vitest';

// What `npm start` runs after setup, for real: the demo's fixed ports (8080, 9001-9003,
// 9100) must be free on the machine running the suite.
const root = new URL('..', import.meta.url).pathname;

/** One request on a connection of its own, as curl makes: an L4 balancer schedules connections. */
const get = (url: string) =>
  new Promise<string>((resolve, reject) => {
    request(url, { agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d)).on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const c = createConnection(port, '127.0.0.1');
    c.on('connect', () => (c.destroy(), resolve(false)));
    c.on('error', () => resolve(true));
  });

describe('npm start (scripts/start.mjs)', () => {
  it('runs the demo: wrr 3:2:1 over three backends, metrics, a killed backend fails no request, and Ctrl-C stops everything', async () => {
    const demo = spawn(process.execPath, ['scripts/start.mjs'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    demo.stdout.on('data', (d) => (out += d));
    demo.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => demo.on('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 15_000;
      while (!/"event":"started"/.test(out) || !out.includes('curl -s 127.0.0.1:8080')) {
        if (Date.now() > deadline) throw new Error(`the demo did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) answers.push((await get('http://127.0.0.1:8080/')).split(' ')[1]!);
      expect(answers).toEqual(['one', 'one', 'two', 'one', 'two', 'three']);
      const metrics = await get('http://127.0.0.1:9100/metrics');
      expect(metrics).toMatch(/fulcrum_server_weight\{service="web",server="127.0.0.1:9001"\} 3/);

      // What the demo prints it does: kill one backend (its pid is printed) and curl again —
      // no request fails. The first clients sent to it are retried on another backend, and
      // the checks take it out.
      const pid = Number(/backend two listening on 127\.0\.0\.1:9002 \(pid (\d+)\)/.exec(out)?.[1]);
      expect(pid).toBeGreaterThan(0);
      process.kill(pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 50));
      const after: string[] = [];
      for (let i = 0; i < 30; i++) after.push((await get('http://127.0.0.1:8080/')).split(' ')[1]!);
      expect(new Set(after)).toEqual(new Set(['one', 'three']));
      const m = await get('http://127.0.0.1:9100/metrics');
      expect(m).toMatch(/fulcrum_connection_retries_total\{service="web",server="127.0.0.1:9002"\} [1-9]/);
    } finally {
      demo.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    for (const port of [8080, 9001, 9002, 9003, 9100]) expect(await refused(port)).toBe(true);
  }, 30_000);
});
