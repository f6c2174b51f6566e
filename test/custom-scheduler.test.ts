import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKernel, readConfigFile } from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { afterAll, describe, expect, it } from 'vitest';

// The example plugin is loaded the way a user's config loads a third-party plugin: by its
// npm package name, resolved and import()ed by the kernel, never imported by this test.
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-example-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('examples/custom-scheduler, loaded by package name', () => {
  it('resolves, validates options, and schedules with the smooth sequence', async () => {
    const file = join(dir, 'fulcrum.yaml');
    writeFileSync(
      file,
      `dataplane: memory
services:
  - name: web
    listen: 127.0.0.1:8080
    scheduler: { name: "@fulcrum-examples/scheduler-swrr", options: { maxSequence: 100 } }
    realServers:
      - { address: 10.0.0.1:80, weight: 5 }
      - { address: 10.0.0.2:80, weight: 1 }
      - { address: 10.0.0.3:80, weight: 1 }
`,
    );
    const mem = createMemoryDataplane();
    const kernel = createKernel({ plugins: [mem.plugin], resolveFrom: [dir, process.cwd()] });
    await kernel.apply(await readConfigFile(file));
    expect(kernel.registry.get('scheduler', 'swrr')?.name).toBe('swrr');
    const picks = Array.from({ length: 7 }, () => mem.connect('web')!.server.slice(0, 8));
    expect(picks).toEqual([
      '10.0.0.1',
      '10.0.0.1',
      '10.0.0.2',
      '10.0.0.1',
      '10.0.0.3',
      '10.0.0.1',
      '10.0.0.1',
    ]);
    await kernel.close();
  });

  it('reports the plugin options error at its line', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      `plugins: ["@fulcrum-examples/scheduler-swrr"]\ndataplane: memory\nservices:\n  - name: web\n    listen: 127.0.0.1:8080\n    scheduler: { name: swrr, options: { maxSequence: 0 } }\n`,
    );
    const kernel = createKernel({ plugins: [createMemoryDataplane().plugin] });
    await expect(kernel.validate(await readConfigFile(file))).rejects.toMatchObject({
      issues: [
        { file, line: 6, path: 'services[0].scheduler.options.maxSequence', message: 'must be integer >= 1' },
      ],
    });
  });
});
