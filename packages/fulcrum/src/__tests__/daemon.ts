import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Helpers for tests that run the built `fulcrum` binary as a real process. */
export const bin = fileURLToPath(new URL('../../dist/bin.js', import.meta.url));

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Writes `fulcrum-stub` into dir/node_modules: a dataplane that listens on nothing but
 * reports ipvsadm-shaped live state (services(), connections()) computed from what it was
 * given, an rr scheduler, and a health check that marks servers on port 9003 down.
 * Counters grow with time (1000 connections a second per server) so that rates are
 * measurable.
 */
export function writeStubPlugins(dir: string): void {
  const pkgDir = join(dir, 'node_modules', 'fulcrum-stub');
  mkdirSync(pkgDir, { recursive: true });
  writeFileSync(
    join(pkgDir, 'package.json'),
    JSON.stringify({
      name: 'fulcrum-stub',
      version: '1.0.0',
      type: 'module',
      exports: { '.': { import: './index.mjs' } },
    }),
  );
  writeFileSync(
    join(pkgDir, 'index.mjs'),
    `const open = { type: 'object', additionalProperties: true, properties: {} };
export const stub = {
  kind: 'dataplane', name: 'stub', kernel: '^0.1.0', capabilities: ['tcp', 'udp', 'persistence'], optionsSchema: open,
  create: () => {
    const services = new Map();
    const t0 = Date.now();
    return {
      start: async () => {},
      apply: async (ch) => {
        for (const n of ch.removed) services.delete(n);
        for (const s of [...ch.added, ...ch.updated]) services.set(s.name, s);
      },
      stop: async () => services.clear(),
      services: () => {
        const grown = Math.floor((Date.now() - t0));
        return [...services.values()].map((s) => ({
          name: s.name, protocol: s.protocol,
          virtual: (s.listen.family === 6 ? '[' + s.listen.address + ']' : s.listen.address) + ':' + s.listen.port,
          plan: s.plan.kind, liveConns: 3, retiring: false,
          ...(s.persistence ? { persistenceTimeoutMs: s.persistence.timeoutMs } : {}),
          servers: s.realServers.filter((r) => !r.sorry).map((r) => ({
            server: r.key, weight: r.weight, inService: true, draining: r.draining,
            activeConns: r.index + 1, inactiveConns: 2 * r.index, persistentConns: 0,
            conns: grown + 100, inPkts: 10 * grown, outPkts: 8 * grown, inBytes: 1500 * grown, outBytes: 1200 * grown,
          })),
        }));
      },
      connections: (q = {}) => {
        const out = [];
        for (const s of services.values()) {
          const virtual = s.listen.address + ':' + s.listen.port;
          s.realServers.forEach((r, i) => {
            out.push({ protocol: s.protocol.toUpperCase(), state: s.protocol === 'tcp' ? 'ESTABLISHED' : 'UDP',
              expiresInMs: 899000 - i * 61000, client: '192.0.2.' + (10 + i) + ':' + (40000 + i), virtual, server: r.key, service: s.name });
            if (s.persistence && q.templates !== false)
              out.push({ protocol: s.protocol.toUpperCase(), state: 'NONE', expiresInMs: 300000,
                client: '192.0.2.' + (10 + i) + ':0', virtual, server: r.key, service: s.name, template: true });
          });
        }
        return out;
      },
    };
  },
};
export const rr = {
  kind: 'scheduler', name: 'rr', kernel: '^0.1.0', optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({ compile: (v) => ({ kind: 'sequence', sequence: v.realServers.filter((r) => r.weight > 0).map((r) => r.index) }) }),
};
export const wlc = { ...rr, name: 'wlc' };
export const port9003 = {
  kind: 'healthcheck', name: 'port9003', kernel: '^0.1.0', optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    watch: (t, report) => {
      const timer = setTimeout(() => report(t.port === 9003 ? { up: false, reason: 'connection refused' } : { up: true, reason: 'connected' }), 10);
      return { stop: () => clearTimeout(timer) };
    },
  }),
};
`,
  );
}

export const STUB_TIMEOUTS = 'options: { timeouts: { tcp: 900000, tcpFin: 120000, udp: 300000 } }';

export function fulcrumSync(dir: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [bin, ...args], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 15_000,
    env: { ...process.env, FULCRUM_ADMIN_TOKEN: '', FULCRUM_ADMIN: '', ...env },
  });
}

/** Runs a command of the binary without blocking the event loop (tests talk HTTP meanwhile). */
export function fulcrumAsync(
  dir: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: dir,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, FULCRUM_ADMIN_TOKEN: '', FULCRUM_ADMIN: '', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

export interface Daemon {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  waitFor: (event: string, timeoutMs?: number) => Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stderr: () => string;
  stop: () => Promise<number | null>;
}

/** Starts `fulcrum run`, collecting its JSON log lines; `children` gets it for cleanup. */
export function startDaemon(
  dir: string,
  file: string,
  children: ChildProcess[],
  env: NodeJS.ProcessEnv = {},
): Daemon {
  const child = spawn(process.execPath, [bin, 'run', file, '--log-format', 'json'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FULCRUM_ADMIN_TOKEN: '', ...env },
  });
  children.push(child);
  const lines: Record<string, unknown>[] = [];
  let stderr = '';
  let buf = '';
  const waiters: { event: string; resolve: (l: Record<string, unknown>) => void }[] = [];
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      lines.push(line);
      for (const w of waiters.filter((w) => w.event === line.event)) w.resolve(line);
    }
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const waitFor = (event: string, timeoutMs = 10_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const seen = lines.find((l) => l.event === event);
      if (seen) return resolve(seen);
      const t = setTimeout(
        () =>
          reject(
            new Error(
              `no "${event}" log line in ${timeoutMs} ms; stderr: ${stderr}; log: ${JSON.stringify(lines)}`,
            ),
          ),
        timeoutMs,
      );
      waiters.push({ event, resolve: (l) => (clearTimeout(t), resolve(l)) });
    });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    return exited;
  };
  return { child, lines, waitFor, exited, stderr: () => stderr, stop };
}

/** Polls `check` until it holds (health verdicts arrive asynchronously after `started`). */
export async function until(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** GET a JSON document without keep-alive (see adm.test.ts for why). */
export function getJson(url: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve(JSON.parse(text)));
    }).on('error', reject);
  });
}

type Listing = { name: string; servers: { port: number; health: string; healthReason?: string }[] }[];

/** Every server of the `web` service has its verdict from port9003, and 9003 is down. */
export const allChecked = (admin: string) => async () => {
  const web = ((await getJson(`http://${admin}/api/v1/services`)) as Listing).find((s) => s.name === 'web');
  return !!web?.servers.every(
    (r) => r.healthReason !== undefined && (r.port !== 9003 || r.health === 'down'),
  );
};
