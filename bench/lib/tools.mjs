// What the benchmarks share: command-line flags, logging, and installing the Debian tools
// they run (as root, with apt-get, serialised with the repository's other installs).
import { spawnSync } from 'node:child_process';

export const argv = process.argv.slice(2);
export const flag = (name) => argv.includes(name);
export const opt = (name, fallback) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : fallback;
};
export const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);
export const onPath = (cmd) =>
  spawnSync('sh', ['-c', `command -v "$0"`, cmd], { stdio: 'ignore' }).status === 0;

/**
 * Installs the Debian packages whose commands are missing: `tools` is a list of
 * [command, package] pairs, `extra` more packages to install whatever is on the PATH.
 * Exits with a message when something is missing and it cannot install (not root, or
 * `--no-install`).
 */
export function ensureTools(tools, extra = []) {
  const need = [...tools.filter(([cmd]) => !onPath(cmd)).map(([, pkg]) => pkg), ...extra];
  if (need.length === 0) return;
  if (flag('--no-install') || process.getuid?.() !== 0) {
    log(`missing: ${need.join(' ')}; install them (apt-get install ${need.join(' ')}) or run as root`);
    process.exit(1);
  }
  log(`installing ${need.join(' ')} (apt-get)`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args) =>
    spawnSync('flock', ['/tmp/fulcrum.lock', 'apt-get', ...args], { stdio: 'inherit', env }).status === 0;
  if (!apt(['install', '-y', '-q', '--no-install-recommends', ...need])) {
    apt(['update', '-q']);
    if (!apt(['install', '-y', '-q', '--no-install-recommends', ...need])) process.exit(1);
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? NaN
    : s.length % 2
      ? s[(s.length - 1) / 2]
      : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
