// Builds every TypeScript project in the workspace with `tsc -b`, in dependency order.
// Projects are discovered (packages/*, examples/*), and the root tsconfig.json — the
// solution file editors read — is rewritten when the list changed, so adding a package
// never needs a hand edit of a shared file.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const projects = ['packages', 'examples']
  .flatMap((dir) =>
    existsSync(join(root, dir)) ? readdirSync(join(root, dir)).map((d) => `${dir}/${d}`) : [],
  )
  .filter((p) => existsSync(join(root, p, 'tsconfig.json')))
  .sort();

const solution =
  JSON.stringify({ files: [], references: projects.map((path) => ({ path })) }, null, 2) + '\n';
const solutionFile = join(root, 'tsconfig.json');
if (!existsSync(solutionFile) || readFileSync(solutionFile, 'utf8') !== solution)
  writeFileSync(solutionFile, solution);

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
try {
  execFileSync(process.execPath, [tsc, '-b', ...process.argv.slice(2), 'tsconfig.json'], {
    cwd: root,
    stdio: 'inherit',
  });
} catch {
  process.exit(1);
}

// Native addons: a package with a "build:native" script builds it here (npm 11 runs no
// install scripts of dependencies by default, and a workspace addon must not rely on them).
// The script decides what to do when its system libraries are missing, and says so.
if (!process.argv.includes('--clean')) {
  for (const p of projects) {
    const pkg = JSON.parse(readFileSync(join(root, p, 'package.json'), 'utf8'));
    if (!pkg.scripts?.['build:native']) continue;
    try {
      execFileSync('npm', ['run', '--silent', 'build:native'], { cwd: join(root, p), stdio: 'inherit' });
    } catch {
      process.exit(1);
    }
  }
}
