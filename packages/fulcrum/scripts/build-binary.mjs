// `npm run build:binary`: the daemon as one executable that runs without npm or a
// node_modules (Node's single-executable applications). The code and the built-in plugins
// are bundled by esbuild into one CommonJS script (what Node 20's SEA runs), made into a
// blob, and injected into a copy of this node binary. Output: packages/fulcrum/binary/fulcrum
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { inject } from 'postject';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(pkgDir, 'binary');
const version = (dir) => JSON.parse(readFileSync(join(pkgDir, dir, 'package.json'), 'utf8')).version;

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const bundle = join(out, 'fulcrum.cjs');
await build({
  entryPoints: [join(pkgDir, 'dist', 'bin.js')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  logLevel: 'warning',
  // No package.json is on disk beside a single binary: versions are compiled in, and module
  // resolution for third-party plugins starts beside the executable.
  define: {
    __FULCRUM_VERSION__: JSON.stringify(version('.')),
    __FULCRUM_KERNEL_VERSION__: JSON.stringify(version('../kernel')),
    'import.meta.url': '__fulcrum_meta_url',
  },
  banner: { js: "const __fulcrum_meta_url = require('node:url').pathToFileURL(process.execPath).href;" },
});

const blob = join(out, 'fulcrum.blob');
const seaConfig = join(out, 'sea-config.json');
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true }));
execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: 'inherit' });

const binary = join(out, 'fulcrum');
copyFileSync(process.execPath, binary);
chmodSync(binary, 0o755);
await inject(binary, 'NODE_SEA_BLOB', readFileSync(blob), {
  sentinelFuse: 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
});
for (const f of [bundle, blob, seaConfig]) rmSync(f);
console.log(`built ${binary}`);
