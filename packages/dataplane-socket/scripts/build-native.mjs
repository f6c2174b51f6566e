// Builds the native relay (a node-addon-api addon: epoll and splice on Linux). It needs only a
// C++ compiler, make and python3 (node-gyp). Where it cannot be built — not Linux, no
// compiler — this prints one line and exits 0: the socket dataplane then relays in
// JavaScript (`relay: auto`), and `relay: native` is refused with FULCRUM_DATAPLANE_UNAVAILABLE.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

const pkgDir = new URL('..', import.meta.url).pathname;
const skip = (why) => {
  process.stderr.write(
    `[fulcrum] @fulcrum/dataplane-socket: ${why}, native relay not built (the JavaScript relay is used)\n`,
  );
  process.exit(0);
};
if (process.platform !== 'linux') skip('not Linux');
for (const cmd of ['g++', 'make', 'python3']) {
  if (spawnSync('sh', ['-c', 'command -v "$0"', cmd], { stdio: 'ignore' }).status !== 0)
    skip(`${cmd} not found (apt-get install g++ make python3, then npm run build)`);
}
const require = createRequire(import.meta.url);
const gyp = join(dirname(require.resolve('node-gyp/package.json')), 'bin', 'node-gyp.js');
// --nodedir: the headers of the system's node; plain node-gyp would download them.
const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
// configure once (or when binding.gyp changed), then let make rebuild only what changed.
const makefile = join(pkgDir, 'build', 'Makefile');
const fresh =
  existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(pkgDir, 'binding.gyp')).mtimeMs;
const r = spawnSync(
  process.execPath,
  [gyp, fresh ? 'build' : 'rebuild', `--nodedir=${nodedir}`, '-j', '2', '--loglevel=warn'],
  { cwd: pkgDir, stdio: 'inherit' },
);
process.exit(r.status ?? 1);
