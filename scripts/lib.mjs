import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export const root = new URL('..', import.meta.url).pathname;

export function log(msg) {
  process.stderr.write(`[fulcrum] ${msg}\n`);
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', ...opts });
  if (r.status !== 0) {
    log(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
    process.exit(r.status || 1);
  }
}

/** package.json of every workspace package (packages/*, examples/*) and of the root. */
export function workspaceManifests() {
  const dirs = ['packages', 'examples'].flatMap((d) =>
    existsSync(join(root, d)) ? readdirSync(join(root, d)).map((p) => join(root, d, p)) : [],
  );
  return [root, ...dirs]
    .filter((d) => existsSync(join(d, 'package.json')))
    .map((d) => ({ dir: d, pkg: JSON.parse(readFileSync(join(d, 'package.json'), 'utf8')) }));
}

/**
 * Debian packages declared by the workspace packages: "fulcrum": { "debianTestDependencies": [...] }
 * for what the tests use, "debianBuildDependencies" for what the build needs (e.g. libdpdk-dev).
 */
export function debianDependencies(kind = 'debianTestDependencies') {
  const all = new Set();
  for (const { pkg } of workspaceManifests()) for (const d of pkg.fulcrum?.[kind] ?? []) all.add(d);
  return [...all].sort();
}

export const debianTestDependencies = () => debianDependencies('debianTestDependencies');

/** Installs missing Debian packages when root; returns those still missing. */
export function installDebianPackages(names, why) {
  const missing = missingDebianPackages(names);
  if (!missing.length) return [];
  if (!isRoot()) {
    log(`not root: cannot install ${missing.join(' ')} (${why}); what needs them will say so`);
    return missing;
  }
  log(`installing Debian packages (${why}): ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-qq'], { env });
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env });
  return [];
}

export function missingDebianPackages(names) {
  return names.filter((n) => {
    try {
      const out = execFileSync('dpkg-query', ['-W', '-f=${Status}', n], {
        stdio: ['ignore', 'pipe', 'ignore'],
      }).toString();
      return !out.includes('install ok installed');
    } catch {
      return true;
    }
  });
}

export function isRoot() {
  return process.getuid?.() === 0;
}

export function newerThan(a, b) {
  return existsSync(a) && (!existsSync(b) || statSync(a).mtimeMs > statSync(b).mtimeMs);
}
