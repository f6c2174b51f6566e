// The DPDK example, end to end on one machine (as root): three network namespaces joined
// by two veth pairs —
//
//   fx-cli (10.1.0.2) ── fx-wanp | fx-wan ── fx-lb: fulcrum + DPDK ── fx-lan | fx-lanp ── fx-srv (10.2.0.11, .12)
//
// — two HTTP servers in fx-srv, and `fulcrum run fulcrum.yaml` in fx-lb, where the
// dataplane owns fx-wan and fx-lan. It prints what to try; Ctrl-C (or SIGTERM) stops the
// daemon and the servers and removes the namespaces and links.
//
//   node examples/dpdk/run.mjs [--name fx]
//
// `--name` replaces the fx prefix of every name (namespaces, links, the EAL file prefix),
// so that two runs can coexist; at most 10 characters.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const at = process.argv.indexOf('--name');
const name = at > 0 ? process.argv[at + 1] : 'fx';
if (!/^[a-z][a-z0-9]{0,9}$/.test(name ?? '')) {
  console.error('--name: a lowercase letter, then at most 9 letters or digits');
  process.exit(2);
}
if (process.getuid?.() !== 0) {
  console.error('run.mjs builds network namespaces and veth pairs: run it as root');
  process.exit(2);
}

// The shipped config, with this run's names (checked before anything is built).
const shipped = readFileSync(join(here, 'fulcrum.yaml'), 'utf8');
const renamed = shipped
  .replaceAll('iface=fx-', `iface=${name}-`)
  .replace(/('--file-prefix',\s*)'fx'/, `$1'${name}'`);
if (name !== 'fx' && !renamed.includes(`'${name}'`))
  throw new Error('fulcrum.yaml: no --file-prefix fx to rename');

const ns = { lb: `${name}-lb`, cli: `${name}-cli`, srv: `${name}-srv` };
const dev = { wan: `${name}-wan`, wanPeer: `${name}-wanp`, lan: `${name}-lan`, lanPeer: `${name}-lanp` };
const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const children = [];
let stopping = false;

function cleanup() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const n of Object.values(ns))
    try {
      ip('netns', 'del', n); // takes its ends of the veth pairs, and so the pairs
    } catch {
      /* not created, or already gone */
    }
  // The runtime directory DPDK's EAL made for this file prefix (it never removes it).
  rmSync(`/var/run/dpdk/${name}`, { recursive: true, force: true });
}

function setup() {
  for (const n of Object.values(ns)) ip('netns', 'add', n);
  for (const n of Object.values(ns)) ip('-n', n, 'link', 'set', 'lo', 'up');
  for (const [own, peer, to] of [
    [dev.wan, dev.wanPeer, ns.cli],
    [dev.lan, dev.lanPeer, ns.srv],
  ]) {
    ip('-n', ns.lb, 'link', 'add', own, 'type', 'veth', 'peer', 'name', peer);
    ip('-n', ns.lb, 'link', 'set', peer, 'netns', to);
    ip('-n', ns.lb, 'link', 'set', own, 'up');
    ip('-n', to, 'link', 'set', peer, 'up');
    // Checksums computed by the kernel in software: DPDK's af_packet sees what the wire would.
    execFileSync('ip', ['netns', 'exec', to, 'ethtool', '-K', peer, 'tx', 'off'], { stdio: 'ignore' });
  }
  ip('-n', ns.cli, 'addr', 'add', '10.1.0.2/24', 'dev', dev.wanPeer);
  ip('-n', ns.cli, 'route', 'add', 'default', 'via', '10.1.0.1');
  ip('-n', ns.srv, 'addr', 'add', '10.2.0.11/24', 'dev', dev.lanPeer);
  ip('-n', ns.srv, 'addr', 'add', '10.2.0.12/24', 'dev', dev.lanPeer);
  ip('-n', ns.srv, 'route', 'add', 'default', 'via', '10.2.0.1');
}

/** Runs argv in a namespace; nsenter switches only the network namespace, then execs. */
function startIn(n, label, argv) {
  const child = spawn('nsenter', [`--net=/var/run/netns/${n}`, ...argv], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  child.on('exit', (code, signal) => {
    if (label === 'fulcrum' && !stopping) {
      console.error(`fulcrum exited (${signal ?? code}): stopping the example`);
      stop(1);
    }
  });
  children.push(child);
  return child;
}

function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  const daemon = children.find((c) => c.label === 'fulcrum');
  const finish = () => {
    cleanup();
    process.exit(code);
  };
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    daemon.once('exit', finish);
    daemon.kill('SIGTERM'); // a clean stop: DPDK closes its ports (and detaches any XDP program)
    setTimeout(finish, 15_000).unref();
  } else {
    finish();
  }
}

try {
  setup();
} catch (e) {
  console.error(`could not build the namespaces: ${e.stderr?.toString().trim() || e.message}`);
  cleanup();
  process.exit(1);
}
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => stop(0));

const backend = join(root, 'examples', 'basic', 'backend.mjs');
startIn(ns.srv, 'one', [process.execPath, backend, 'one', '80', '10.2.0.11']);
startIn(ns.srv, 'two', [process.execPath, backend, 'two', '80', '10.2.0.12']);

// Written where the daemon reads it.
const dir = mkdtempSync(join(tmpdir(), `${name}-config-`));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const config = join(dir, 'fulcrum.yaml');
writeFileSync(config, renamed);
const daemon = startIn(ns.lb, 'fulcrum', [
  process.execPath,
  join(root, 'packages', 'fulcrum', 'dist', 'bin.js'),
  'run',
  config,
  '--log-format',
  process.stdout.isTTY ? 'pretty' : 'json',
]);
daemon.label = 'fulcrum';

console.log(`
  The DPDK dataplane runs in ${ns.lb}; try, as root:
    ip netns exec ${ns.cli} curl -s http://10.1.0.100/          # wlc 3:1 over the two servers
    ip netns exec ${ns.cli} ping -c1 10.1.0.100                 # the dataplane answers for the VIP
    ip netns exec ${ns.lb} curl -s 127.0.0.1:9100/metrics | grep fulcrum_dpdk_
    ip netns exec ${ns.lb} node ${join(root, 'packages', 'fulcrum', 'dist', 'bin.js')} adm -L -n -c
  Ctrl-C stops the example and removes the namespaces.
`);
