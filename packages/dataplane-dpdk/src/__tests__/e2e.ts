import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
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
