// What `npm start` and `npm test` run first on any clone: install the npm dependencies
// when they are missing or stale, the Debian packages the build needs (as root), then
// build every package. Idempotent and quick when
// there is nothing to do.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { debianDependencies, installDebianPackages, log, newerThan, root, run } from './lib.mjs';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const installed = join(root, 'node_modules', '.package-lock.json');
if (!existsSync(installed) || newerThan(join(root, 'package-lock.json'), installed)) {
  log('installing npm dependencies (npm ci)');
  run(npm, ['ci', '--no-audit', '--no-fund']);
}
installDebianPackages(debianDependencies('debianBuildDependencies'), 'for the build');
log('building');
run(process.execPath, [join(root, 'scripts', 'build.mjs')]);
