// What `npm start` and `npm test` run first on any clone: the Debian packages the build
// needs (as root), the npm dependencies when they are missing or stale, then the build of
// every package. Idempotent and quick when there is nothing to do.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { debianDependencies, installDebianPackages, log, newerThan, root, run } from './lib.mjs';

// System libraries first: a native addon may compile while npm installs.
installDebianPackages(debianDependencies('debianBuildDependencies'), 'for the build');

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || newerThan(join(root, 'package-lock.json'), installed)) {
  log('installing npm dependencies (npm ci)');
  run(npm, ['ci', '--no-audit', '--no-fund']);
}
log('building');
run(process.execPath, [join(root, 'scripts', 'build.mjs')]);
