import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Topology } from './netns.js';

// What the end-to-end tests share: the kernel and the dpdk dataplane run from the built
// packages in a child process (EAL initialises once per process), configured from YAML and
// driven through eal-child.mjs's stdin/stdout protocol.

const pkg = fileURLToPath(new URL('../../', import.meta.url));
const childScript = fileURLToPath(new URL('./eal-child.mjs', import.meta.url));

/** Why the child cannot run the packages it needs (missing or older than src/), or undefined. */
export function distReason(packages: readonly string[] = ['kernel']): string | undefined {
  for (const p of ['dataplane-dpdk', ...packages])
    if (!existsSync(`${pkg}../${p}/dist/index.js`)) return `needs the built packages (npm run build): ${p}`;
  const stale = readdirSync(`${pkg}src`).find((f) => {
    const js = `${pkg}dist/${f.replace(/\.ts$/, '.js')}`;
    return (
      f.endsWith('.ts') && (!existsSync(js) || statSync(`${pkg}src/${f}`).mtimeMs > statSync(js).mtimeMs)
    );
  });
  return stale ? `dist is older than src/${stale} (npm run build)` : undefined;
}

export type Pmd = 'af_packet' | 'af_xdp';

/** The vdev of DPDK port `n` on `iface` with `queues` queue pairs. */
export const vdev = (pmd: Pmd, n: number, iface: string, queues = 1) =>
  pmd === 'af_packet'
    ? `net_af_packet${n},iface=${iface}${queues > 1 ? `,qpairs=${queues}` : ''}`
    : `net_af_xdp${n},iface=${iface},start_queue=0,queue_count=${queues}`;

export interface DataplaneYaml {
  /** EAL --file-prefix (unique per process). */
  prefix: string;
  pmd?: Pmd;
  /** Worker lcores (0..workers-1), each with a queue pair per port unless `queues` says fewer. */
  workers?: number;
  queues?: number;
  wanIface?: string;
  /** The connection table's size (split between the workers). */
  maxConnections?: number;
  /** More lines under `options:`, each starting with a newline and four spaces. */
  options?: string;
  /** More keys of the wan port's mapping, e.g. `rxDescriptors: 512`. */
  wanPort?: string;
}

/**
 * The `dataplane:` section the end-to-end tests run (the issue's config shape): the two
 * ports of `t`, its client and servers as permanent neighbours, a 4096-connection table
 * unless `maxConnections` says otherwise.
 */
export function dataplaneYaml(t: Topology, o: DataplaneYaml): string {
  const {
    prefix,
    pmd = 'af_packet',
    workers = 1,
    queues = workers,
    wanIface = t.wan,
    maxConnections = 4096,
    options = '',
    wanPort = '',
  } = o;
  return `
dataplane:
  name: dpdk
  options:
    eal: ['-l', '${workers > 1 ? `0-${workers - 1}` : '0'}', '--no-pci', '--no-huge', '-m', '512', '--no-shconf', '--no-telemetry', '--file-prefix', '${prefix}']
    ports:
      - { name: wan, vdev: '${vdev(pmd, 0, wanIface, queues)}', addresses: [10.1.0.1/24]${wanPort ? `, ${wanPort}` : ''} }
      - { name: lan, vdev: '${vdev(pmd, 1, t.lan, queues)}', addresses: [10.2.0.1/24] }
    neighbors:
      - { port: wan, address: 10.1.0.2, mac: '${t.clientMac}' }
      - { port: lan, address: 10.2.0.11, mac: '${t.serverMac}' }
      - { port: lan, address: 10.2.0.12, mac: '${t.serverMac}' }
    maxConnections: ${maxConnections}${workers > 1 ? '\n    idle: { mode: adaptive }' : ''}${options}`;
}

export interface Dataplane {
  child: ChildProcess;
  /** The rest of the next line the child prints that starts with `prefix` (throws on "failed"). */
  next(prefix: string): Promise<string>;
  /** Writes one command line to the child (see eal-child.mjs). */
  send(command: string): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts the kernel with `yaml` in a child process, in the balancer's namespace of `t`;
 * the caller kills it (by PID) when done.
 */
export function startChild(t: Topology, yaml: string): Dataplane {
  const [cmd, args] = t.inLb([process.execPath, childScript, yaml]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines: string[] = [];
  const waiters: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    waiters.splice(0).forEach((w) => w());
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const next = async (prefix: string) => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const i = lines.findIndex((l) => l.startsWith(prefix) || l.startsWith('failed'));
      if (i >= 0) {
        const l = lines.splice(i, 1)[0]!;
        if (l.startsWith('failed')) throw new Error(l);
        return l.slice(prefix.length).trim();
      }
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`dataplane exited: ${lines.join('\n')}`);
      if (Date.now() > deadline) throw new Error(`no "${prefix}" from the dataplane`);
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 200);
      });
    }
  };
  return { child, next, send: (command) => child.stdin!.write(`${command}\n`), exited };
}

/**
 * After a file's tests: kills what is still running of `children` (by PID, through their
 * handles), removes the namespaces of `t`, and the runtime directory EAL left for `prefix`.
 */
export function teardown(t: Topology, prefix: string, children: readonly (ChildProcess | undefined)[]): void {
  for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  t.cleanup();
  rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
}
