// Builds the addon when the system has DPDK (pkg-config finds libdpdk). Without it the rest
// of Fulcrum still builds and works: this prints one line and exits 0, and the package
// reports FULCRUM_DATAPLANE_UNAVAILABLE with the install command when it is loaded.
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const pkgDir = new URL('..', import.meta.url).pathname;
try {
  execFileSync('pkg-config', ['--exists', 'libdpdk'], { stdio: 'ignore' });
} catch {
  process.stderr.write(
    '[fulcrum] @fulcrum/dataplane-dpdk: libdpdk not found by pkg-config, native addon not built ' +
      '(apt-get install libdpdk-dev dpdk pkg-config, then npm run build)\n',
  );
  process.exit(0);
}
const require = createRequire(import.meta.url);
const gyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
// --nodedir=/usr: the headers of the system's node; plain node-gyp would download them.
const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
// configure once (or when binding.gyp changed), then let make rebuild only what changed.
const makefile = join(pkgDir, 'build', 'Makefile');
const fresh =
  existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(pkgDir, 'binding.gyp')).mtimeMs;
const verb = fresh ? 'build' : 'rebuild';
const r = spawnSync(process.execPath, [gyp, verb, `--nodedir=${nodedir}`, '-j', '2', '--loglevel=warn'], {
  cwd: pkgDir,
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
