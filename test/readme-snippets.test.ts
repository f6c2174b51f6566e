import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every README block fenced as ```js runnable is run as an ES module inside its package
// (so its imports resolve as a user's would) and must exit 0: a README whose snippet rots
// fails the suite.
const root = new URL('..', import.meta.url).pathname;
const readmes = ['packages', 'examples']
  .flatMap((d) => readdirSync(join(root, d)).map((p) => join(root, d, p)))
  .filter((dir) => existsSync(join(dir, 'README.md')));

const snippets = readmes.flatMap((dir) => {
  const text = readFileSync(join(dir, 'README.md'), 'utf8');
  return [...text.matchAll(/^```js runnable\n([\s\S]*?)^```$/gm)].map((m, i) => ({ dir, i, code: m[1]! }));
});

describe('README snippets', () => {
  it('there is at least one runnable snippet (the kernel README has one)', () => {
    expect(snippets.some((s) => s.dir.endsWith('packages/kernel'))).toBe(true);
  });
  it.each(snippets.map((s) => [`${s.dir.slice(root.length)} #${s.i + 1}`, s] as const))(
    '%s runs',
    (_name, s) => {
      const file = join(s.dir, `.readme-snippet-${s.i}.mjs`);
      writeFileSync(file, s.code);
      try {
        const r = spawnSync(process.execPath, [file], { cwd: s.dir, encoding: 'utf8', timeout: 30_000 });
        expect(r.stderr).toBe('');
        expect(r.status).toBe(0);
      } finally {
        rmSync(file, { force: true });
      }
    },
  );
});
