import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// Users install tarballs from the registry, not this workspace: pack the packages, install
// them into a clean project, and use them there as an app would — types included.
const root = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-pack-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const packages = ['kernel', 'scheduler-wrr', 'dataplane-socket', 'proxy-protocol'];

function pack(pkg: string): string {
  const out = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], {
    cwd: join(root, 'packages', pkg),
    encoding: 'utf8',
  });
  return join(dir, out.trim().split('\n').at(-1)!);
}

describe('published packages', () => {
  it('install from their tarballs into a clean project, type-check, and balance a connection', () => {
    const tarballs = Object.fromEntries(packages.map((p) => [`@fulcrum/${p}`, `file:${pack(p)}`]));
    // What goes into a tarball: built JavaScript, declarations, README; no tests, no sources of tests.
    const listing = execFileSync('tar', ['-tzf', tarballs['@fulcrum/kernel']!.slice(5)], {
      encoding: 'utf8',
    });
    expect(listing).toMatch(/package\/dist\/index\.js/);
    expect(listing).toMatch(/package\/dist\/index\.d\.ts/);
    expect(listing).toMatch(/package\/README\.md/);
    expect(listing).not.toMatch(/__tests__/);

    const app = join(dir, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: tarballs }),
    );
    const install = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: app,
      encoding: 'utf8',
      timeout: 180_000,
    });
    expect(install.stderr.replace(/npm warn.*\n/gi, '')).toBe('');
    expect(install.status).toBe(0);
    expect(readdirSync(join(app, 'node_modules', '@fulcrum')).sort()).toEqual([
      'dataplane-socket',
      'kernel',
      'proxy-protocol',
      'scheduler-wrr',
    ]);

    writeFileSync(
      join(app, 'app.ts'),
      `import { createServer, connect, type AddressInfo } from 'node:net';
import { createKernel, type ServiceSnapshot } from '@fulcrum/kernel';
import wrr from '@fulcrum/scheduler-wrr';
import socket from '@fulcrum/dataplane-socket';

const backend = createServer((c) => { c.on('error', () => {}); c.end('hello from the backend\\n'); });
await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
const free = createServer();
await new Promise<void>((r) => free.listen(0, '127.0.0.1', r));
const vip = (free.address() as AddressInfo).port;
await new Promise((r) => free.close(r));

const kernel = createKernel({ plugins: [wrr, socket] });
await kernel.apply({
  dataplane: 'socket',
  services: [{ name: 'web', listen: '127.0.0.1:' + vip, scheduler: 'wrr',
    realServers: [{ address: '127.0.0.1:' + (backend.address() as AddressInfo).port, weight: 2 }] }],
});
const snap: ServiceSnapshot = kernel.snapshot('web');
const reply = await new Promise<string>((resolve, reject) => {
  let data = '';
  const c = connect(vip, '127.0.0.1');
  c.on('data', (d) => (data += d)).on('end', () => resolve(data)).on('error', reject);
});
console.log(snap.plan.kind, reply.trim());
await kernel.close();
backend.close();
`,
    );
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          outDir: 'out',
          skipLibCheck: false,
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['app.ts'],
      }),
    );
    const tsc = spawnSync(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app],
      { encoding: 'utf8' },
    );
    expect(tsc.stdout).toBe('');
    expect(tsc.status).toBe(0);

    const run = spawnSync(process.execPath, [join(app, 'out', 'app.js')], {
      cwd: app,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('sequence hello from the backend');
  }, 240_000);
});
