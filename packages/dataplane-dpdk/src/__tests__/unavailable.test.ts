import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { requires } from '@fulcrum/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const pkg = fileURLToPath(new URL('../../', import.meta.url));
const need = requires({
  check: () =>
    existsSync(join(pkg, 'dist/index.js')) ? undefined : 'needs the built package (npm run build)',
});

// A copy of the built package with no addon beside it, inside the package so that
// @fulcrum/kernel still resolves; PKG_CONFIG_LIBDIR hides libdpdk as on a machine without it.
describe.skipIf(need.skip)(`a machine without DPDK${need.note}`, () => {
  const dir = mkdtempSync(join(pkg, '.tmp-unavailable-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    [
      'DPDK missing',
      { PKG_CONFIG_LIBDIR: '/nonexistent', PKG_CONFIG_PATH: '' },
      /DPDK is not installed: apt-get install libdpdk-dev dpdk/,
    ],
    ['DPDK present, addon not built', {}, /addon is not built.*npm run build/],
  ])('%s: a DataplaneError that says what to do, and the package still imports', (_name, env, message) => {
    cpSync(join(pkg, 'dist'), join(dir, 'dist'), { recursive: true });
    const script = `
      const m = await import(${JSON.stringify(join(dir, 'dist/index.js'))});
      try { m.loadNative(); console.log('loaded'); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })); }`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: pkg,
      encoding: 'utf8',
      env: { ...process.env, ...env },
    });
    const e = JSON.parse(out) as { name: string; code: string; message: string };
    expect(e).toMatchObject({ name: 'DataplaneError', code: 'FULCRUM_DATAPLANE_UNAVAILABLE' });
    expect(e.message).toMatch(message);
  });
});
