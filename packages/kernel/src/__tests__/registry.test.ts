import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createKernel,
  defineScheduler,
  ErrorCodes,
  FulcrumError,
  KERNEL_VERSION,
  PluginRegistry,
} from '../index.js';
import { recordingDataplane } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-registry-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a real package into dir/node_modules, as npm would have installed it. */
function pkg(name: string, source: string, exportsField: unknown = { '.': { import: './index.mjs' } }) {
  const root = join(dir, 'node_modules', name);
  mkdirSync(root, { recursive: true });
  writeFileSync(
    join(root, 'package.json'),
    JSON.stringify({ name, version: '1.0.0', type: 'module', exports: exportsField }),
  );
  writeFileSync(join(root, 'index.mjs'), source);
}

const plugin = (name: string, kernel = '^0.1.0', kind = 'scheduler') => `{
  kind: '${kind}', name: '${name}', kernel: '${kernel}',
  optionsSchema: { type: 'object', properties: { spread: { type: 'integer', default: 2 } }, additionalProperties: false },
  ${kind === 'dataplane' ? 'capabilities: ["tcp"],' : ''}
  create: () => ({ compile: (v) => ({ kind: 'sequence', sequence: v.realServers.map((r) => r.index) }) }),
}`;

pkg('@acme/fulcrum-scheduler-first', `export default ${plugin('first')};`);
pkg('@fulcrum/scheduler-conv', `export default ${plugin('conv')};`, { '.': './index.mjs' });
pkg('@acme/two', `export const a = ${plugin('a')}; export const b = ${plugin('b')};`);
pkg('@acme/future', `export default ${plugin('future', '^9.0.0')};`);
pkg('@acme/nothing', `export const x = 1;`);
pkg('@acme/broken', `export default {;`);
pkg('@acme/dp-only', `export default ${plugin('dp', '^0.1.0', 'dataplane')};`);

describe('PluginRegistry', () => {
  it('checks a plugin once at registration: shape, kernel range, options schema', () => {
    const r = new PluginRegistry(KERNEL_VERSION, dir);
    const ok = defineScheduler({
      name: 'ok',
      kernel: '^0.1.0',
      optionsSchema: { type: 'object' },
      create: () => ({ compile: () => ({ kind: 'sequence', sequence: [] }) }),
    });
    expect(r.register(ok)).toBe(ok);
    expect(r.register(ok)).toBe(ok); // the same object twice is harmless
    expect(() => r.register({ ...ok })).toThrow(
      expect.objectContaining({ code: ErrorCodes.PLUGIN_DUPLICATE }),
    );
    expect(() => r.register({ ...ok, name: 'old', kernel: '^2.0.0' })).toThrow(
      expect.objectContaining({
        code: ErrorCodes.KERNEL_VERSION,
        message: expect.stringMatching(/supports @fulcrum\/kernel \^2\.0\.0, but this is 0\.1\.0/),
      }),
    );
    expect(() => r.register({ ...ok, name: 'x', kernel: 'whenever' })).toThrow(
      expect.objectContaining({ code: ErrorCodes.PLUGIN_INVALID }),
    );
    expect(() => r.register({ ...ok, name: 'Bad Name' })).toThrow(/name must be kebab-case/);
    expect(() =>
      r.register({
        ...ok,
        name: 'noschema',
        optionsSchema: { type: 'object', properties: { a: { tpye: 'string' } } },
      }),
    ).toThrow(
      expect.objectContaining({
        code: ErrorCodes.PLUGIN_INVALID,
        message: expect.stringMatching(/invalid optionsSchema.*tpye/),
      }),
    );
    expect(() => r.register({ name: 'x' })).toThrow(/kind must be one of/);
    expect(() => r.register({ ...ok, kind: 'dataplane', name: 'dp' })).toThrow(/must declare capabilities/);
  });

  it('resolves a package name and a conventional package for a short name', async () => {
    const r = new PluginRegistry(KERNEL_VERSION, dir);
    expect((await r.resolve('scheduler', '@acme/fulcrum-scheduler-first')).name).toBe('first');
    expect((await r.resolve('scheduler', 'first')).name).toBe('first'); // registered by loading
    expect((await r.resolve('scheduler', 'conv')).name).toBe('conv'); // → @fulcrum/scheduler-conv
  });

  it.each([
    [
      '@acme/two',
      ErrorCodes.PLUGIN_NOT_FOUND,
      /exports several scheduler plugins \(a, b\): name one of them/,
    ],
    ['@acme/future', ErrorCodes.KERNEL_VERSION, /supports @fulcrum\/kernel \^9\.0\.0/],
    ['@acme/nothing', ErrorCodes.PLUGIN_INVALID, /exports no Fulcrum plugin/],
    ['@acme/broken', ErrorCodes.PLUGIN_INVALID, /failed to load/],
    ['@acme/dp-only', ErrorCodes.PLUGIN_KIND, /has no scheduler plugin \(it exports: dataplane "dp"\)/],
    ['@acme/absent', ErrorCodes.PLUGIN_NOT_FOUND, /"@acme\/absent" is not installed/],
  ])('refuses %s with %s', async (name, code, message) => {
    const err = await new PluginRegistry(KERNEL_VERSION, dir)
      .resolve('scheduler', name)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FulcrumError);
    expect(err).toMatchObject({ code, message: expect.stringMatching(message) });
  });

  it("never takes one of Node's own modules for a plugin package", async () => {
    const err = await new PluginRegistry(KERNEL_VERSION, dir)
      .resolve('healthcheck', 'net')
      .catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: ErrorCodes.PLUGIN_NOT_FOUND,
      message: expect.stringMatching(/"@fulcrum\/healthcheck-net" is not installed/),
    });
  });

  it('uses fallback plugins only when nothing registered or installed answers the name', async () => {
    const bundled = (name: string) =>
      defineScheduler({
        name,
        kernel: '^0.1.0',
        optionsSchema: { type: 'object' },
        create: () => ({ compile: () => ({ kind: 'sequence', sequence: [] }) }),
      });
    const [only, conv] = [bundled('only-bundled'), bundled('conv')];
    const r = new PluginRegistry(KERNEL_VERSION, dir, [only, conv]);
    expect(await r.resolve('scheduler', 'only-bundled')).toBe(only); // nothing installed: the bundled one
    expect(await r.resolve('scheduler', '@fulcrum/scheduler-only-bundled')).toBe(only); // by its package name too
    expect(await r.resolve('scheduler', 'conv')).not.toBe(conv); // @fulcrum/scheduler-conv is installed: it wins
    await expect(r.resolve('dataplane', 'only-bundled')).rejects.toMatchObject({
      code: ErrorCodes.PLUGIN_NOT_FOUND,
    });
  });

  it('loads a third-party plugin named in a config, with its options schema in force', async () => {
    const k = createKernel({ plugins: [recordingDataplane().plugin], resolveFrom: dir });
    const good = await k.validate({
      dataplane: 'memory',
      services: [{ name: 'a', listen: '127.0.0.1:1', scheduler: '@acme/fulcrum-scheduler-first' }],
    });
    expect(good.config.services[0]!.scheduler).toEqual({
      name: '@acme/fulcrum-scheduler-first',
      options: { spread: 2 },
    });
    await expect(
      k.validate({
        dataplane: 'memory',
        services: [
          { name: 'a', listen: '127.0.0.1:1', scheduler: { name: 'first', options: { spread: 'x' } } },
        ],
      }),
    ).rejects.toMatchObject({
      issues: [{ path: 'services[0].scheduler.options.spread', message: 'must be integer' }],
    });
  });
});
