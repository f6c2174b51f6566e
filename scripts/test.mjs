// The whole test suite: the command the README gives and .ci/run calls.
// 1. Installs the Debian packages that the tests use (haproxy, tshark, …, as each package
//    declares them) when running as root; otherwise those tests say why they skip.
// 2. Runs every test with vitest.
// 3. Prints one closing line "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { debianTestDependencies, installDebianPackages, log, root } from './lib.mjs';

installDebianPackages(debianTestDependencies(), 'for the tests');

const results = join(root, '.vitest-results.json');
rmSync(results, { force: true });
const vitest = join(root, 'node_modules', 'vitest', 'vitest.mjs');
const args = [
  vitest,
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${results}`,
  ...process.argv.slice(2),
];
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });

if (existsSync(results)) {
  const j = JSON.parse(readFileSync(results, 'utf8'));
  const skipped = (j.numPendingTests ?? 0) + (j.numTodoTests ?? 0);
  console.log(`\nTests: ${j.numPassedTests} passed, ${j.numFailedTests} failed, ${skipped} skipped`);
  if (j.numTotalTests === 0) {
    log('no test ran');
    process.exit(1);
  }
}
process.exit(r.status ?? 1);
