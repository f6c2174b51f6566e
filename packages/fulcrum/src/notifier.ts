import { spawn } from 'node:child_process';
import type { Kernel, NotifySpec } from '@fulcrum/kernel';
import type { Logger as PinoLogger } from 'pino';

export interface NotifierOptions {
  /** A command running longer is killed (SIGKILL) and counted as failed. */
  timeoutMs?: number;
  /** Output kept for the log, per stream. */
  maxOutputBytes?: number;
}

type Hook = keyof NotifySpec;

/**
 * Runs a service's `notify` commands, as keepalived runs notify_up/notify_down and
 * quorum_up/quorum_down: on the kernel's `server:state` and `service:quorum` events, with
 * the server in the environment, never through a shell, bounded in time and output.
 */
export class Notifier {
  readonly #kernel: Kernel;
  readonly #logger: PinoLogger;
  readonly #timeoutMs: number;
  readonly #maxOutput: number;
  readonly #running = new Set<Promise<void>>();
  readonly #runs;
  readonly #off: (() => void)[] = [];

  constructor(kernel: Kernel, logger: PinoLogger, options: NotifierOptions = {}) {
    this.#kernel = kernel;
    this.#logger = logger;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxOutput = options.maxOutputBytes ?? 4096;
    this.#runs = kernel.metrics.counter({
      name: 'fulcrum_notify_runs_total',
      help: 'notify commands run, by service, hook and result (ok, failed, timeout)',
      labelNames: ['service', 'hook', 'result'],
    });
    const onState = (e: { service: string; server: string; health: string; reason: string }) => {
      const [address, port] = splitKey(e.server);
      this.#run(e.service, e.health === 'up' ? 'up' : 'down', {
        FULCRUM_SERVER: e.server,
        FULCRUM_SERVER_ADDRESS: address,
        FULCRUM_SERVER_PORT: port,
        FULCRUM_STATE: e.health,
        FULCRUM_REASON: e.reason,
      });
    };
    const onQuorum = (e: { service: string; up: boolean; liveWeight: number; required: number }) =>
      this.#run(e.service, e.up ? 'quorumUp' : 'quorumDown', {
        FULCRUM_STATE: e.up ? 'quorum-up' : 'quorum-down',
        FULCRUM_LIVE_WEIGHT: String(e.liveWeight),
        FULCRUM_QUORUM: String(e.required),
      });
    kernel.events.on('server:state', onState);
    kernel.events.on('service:quorum', onQuorum);
    this.#off.push(
      () => kernel.events.off('server:state', onState),
      () => kernel.events.off('service:quorum', onQuorum),
    );
  }

  /** Stops listening and waits for the commands still running. */
  async close(): Promise<void> {
    for (const off of this.#off.splice(0)) off();
    await Promise.all([...this.#running]);
  }

  #run(service: string, hook: Hook, env: Record<string, string>): void {
    const argv = this.#kernel.config?.services.find((s) => s.name === service)?.notify[hook];
    if (!argv?.length) return;
    const [file, ...args] = argv as [string, ...string[]];
    const done = new Promise<void>((resolve) => {
      // Its own process group, so a timeout also kills whatever the command forked.
      const child = spawn(file, args, {
        env: { ...process.env, FULCRUM_SERVICE: service, FULCRUM_HOOK: hook, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const out = { stdout: '', stderr: '' };
      const keep = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
        if (out[stream].length < this.#maxOutput)
          out[stream] += chunk.toString().slice(0, this.#maxOutput - out[stream].length);
      };
      child.stdout.on('data', keep('stdout'));
      child.stderr.on('data', keep('stderr'));
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, this.#timeoutMs);
      let spawnError: Error | undefined;
      child.on('error', (e) => (spawnError = e));
      child.on('close', (code) => {
        clearTimeout(timer);
        const result = timedOut ? 'timeout' : code === 0 && !spawnError ? 'ok' : 'failed';
        this.#runs.inc({ service, hook, result });
        const entry = { event: 'notify', service, hook, command: argv, result, exitCode: code, ...out };
        if (result === 'ok') this.#logger.info(entry, `notify ${hook} for ${service} ran`);
        else
          this.#logger.warn(
            entry,
            `notify ${hook} for ${service} ${result}${spawnError ? `: ${spawnError.message}` : ''}`,
          );
        resolve();
      });
    });
    this.#running.add(done);
    void done.then(() => this.#running.delete(done));
  }
}

function splitKey(key: string): [string, string] {
  const i = key.lastIndexOf(':');
  return [key.slice(0, i).replace(/^\[|\]$/g, ''), key.slice(i + 1)];
}
