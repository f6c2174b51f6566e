import { requires } from '@fulcrum/testkit';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const pkg = fileURLToPath(new URL('../../', import.meta.url));
// The kernel's header for native dataplanes (fulcrum/plan-hash.h).
const kernelNative = createRequire(import.meta.url)('@fulcrum/kernel/native') as string;
const libdpdk = () => {
  try {
    execFileSync('pkg-config', ['--exists', 'libdpdk']);
    return undefined;
  } catch {
    return 'needs libdpdk (apt-get install libdpdk-dev)';
  }
};
const need = requires({ commands: ['g++', 'pkg-config'], check: libdpdk });

// The core is built here with g++ and DPDK alone, no Node headers: it must stay N-API free.
describe.skipIf(need.skip)(`the C++ core on its own${need.note}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-core-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('builds without Node and passes its checks', { timeout: 120_000 }, () => {
    const flags = (what: string) =>
      execFileSync('pkg-config', [what, 'libdpdk'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
    const bin = join(dir, 'core-test');
    // Every core file but eal.cc links here: the workers' rings and slices are checked with threads.
    const core = [
      'checksum',
      'conn',
      'tcp',
      'laddr',
      'neigh',
      'route',
      'pipeline',
      'fullnat',
      'insert',
      'worker',
      'syncookie',
      'synproxy',
      'drain',
    ].map((f) => join(pkg, 'native/core', `${f}.cc`));
    execFileSync(
      'g++',
      [
        '-std=c++17',
        '-O1',
        '-Wall',
        '-Werror',
        `-I${join(pkg, 'native')}`,
        `-I${kernelNative}`,
        ...flags('--cflags'),
        join(pkg, 'native/core/test/core-test.cc'),
        ...core,
        '-pthread',
        '-o',
        bin,
        ...flags('--libs'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const out = execFileSync(bin, { encoding: 'utf8' });
    expect(out.trim().split('\n')).toEqual([
      'ok plan_hash vectors',
      'ok incremental checksums',
      'ok conn table against std::unordered_map',
      'ok tcp states (IPVS table)',
      'ok tcp options and sequence shifts',
      'ok local-port slices per worker',
      'ok redirect ring across threads',
      'ok siphash and syn cookies',
    ]);
  });
});
