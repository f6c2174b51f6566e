import { spawn } from 'node:child_process';
import {
  activeOptionsProperties,
  defineActiveCheck,
  errorMessage,
  type ActiveOptions,
  type Probe,
  type ProbeResult,
} from '@fulcrum/healthcheck-active';
import type { Logger } from '@fulcrum/kernel';

export interface ScriptOptions extends ActiveOptions {
  /** The program to run (keepalived `misc_path`); not run through a shell. */
  path: string;
  args: string[];
  /** Extra environment; the server's variables are added, the daemon's environment is inherited. */
  env: Record<string, string>;
  /** keepalived `misc_dynamic`: exit 2–255 is up with weight = code − 2. */
  dynamic: boolean;
  /** Bytes of stdout and of stderr kept for the log; the rest is read and dropped. */
  maxOutput: number;
}

/** Keeps the first `max` bytes of a stream, and counts the rest. */
class Capture {
  #chunks: Buffer[] = [];
  #kept = 0;
  dropped = 0;
  constructor(readonly max: number) {}
  push(b: Buffer): void {
    const room = this.max - this.#kept;
    if (room > 0) {
      const part = b.length > room ? b.subarray(0, room) : b;
      this.#chunks.push(Buffer.from(part));
      this.#kept += part.length;
    }
    this.dropped += Math.max(0, b.length - Math.max(0, room));
  }
  text(): string {
    const s = Buffer.concat(this.#chunks).toString('utf8');
    return this.dropped ? `${s}… [${this.dropped} more bytes dropped]` : s;
  }
  firstLine(): string {
    const line =
      Buffer.concat(this.#chunks)
        .toString('utf8')
        .split('\n')
        .find((l) => l.trim()) ?? '';
    return line.length > 120 ? `${line.slice(0, 120)}…` : line;
  }
}

/** Exit status → verdict, as keepalived's MISC_CHECK (and misc_dynamic) reads it. */
export function exitVerdict(code: number, dynamic: boolean): ProbeResult {
  if (code === 0) return { ok: true, reason: 'exit 0' };
  if (dynamic && code >= 2 && code <= 255) return { ok: true, reason: `exit ${code}`, weight: code - 2 };
  return { ok: false, reason: `exit ${code}`, code: 'exit' };
}

/** Kills the script's process group: the script and whatever it forked (unless it left the group). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function scriptProbe(options: ScriptOptions, logger: Logger): Probe {
  return (target, signal) =>
    new Promise((resolve) => {
      const env = {
        ...process.env,
        FULCRUM_SERVICE: target.service.name,
        FULCRUM_SERVER: target.server,
        FULCRUM_SERVER_ADDRESS: target.connectAddress,
        FULCRUM_SERVER_PORT: String(target.connectPort),
        FULCRUM_SERVER_WEIGHT: String(target.weight),
        ...options.env,
      };
      let child: ReturnType<typeof spawn>;
      try {
        // detached: its own process group, so a timeout kills what it forked too
        child = spawn(options.path, options.args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (e) {
        return resolve({ ok: false, reason: `spawn ${options.path}: ${errorMessage(e)}`, code: 'spawn' });
      }
      const out = new Capture(options.maxOutput);
      const err = new Capture(options.maxOutput);
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      let settled = false;
      const done = (result: ProbeResult) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        killGroup(child.pid);
        // forked children may hold the pipes open; we do not wait for them
        child.stdout!.destroy();
        child.stderr!.destroy();
        const detail = result.ok ? '' : err.firstLine() || out.firstLine();
        logger.debug(
          {
            server: target.server,
            path: options.path,
            result: result.reason,
            stdout: out.text(),
            stderr: err.text(),
          },
          `script ${options.path} for ${target.server}: ${result.reason}`,
        );
        resolve(detail ? { ...result, reason: `${result.reason}: ${detail}` } : result);
      };
      const onAbort = () => done({ ok: false, reason: 'killed', code: 'timeout' });
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (e) =>
        done({ ok: false, reason: `spawn ${options.path}: ${e.message}`, code: 'spawn' }),
      );
      child.once('exit', (code, sig) =>
        done(
          code !== null
            ? exitVerdict(code, options.dynamic)
            : { ok: false, reason: `killed by ${sig ?? 'a signal'}`, code: 'signal' },
        ),
      );
    });
}

export const script = defineActiveCheck<ScriptOptions>({
  name: 'script',
  kernel: '^0.1.0',
  description: 'keepalived MISC_CHECK: runs a program; exit 0 is up (misc_dynamic: 2–255 sets the weight)',
  properties: {
    path: { type: 'string', minLength: 1, description: 'keepalived misc_path' },
    args: { type: 'array', items: { type: 'string' }, default: [] },
    env: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    dynamic: { type: 'boolean', default: false, description: 'keepalived misc_dynamic' },
    maxOutput: { type: 'integer', minimum: 0, maximum: 16 * 1024 * 1024, default: 64 * 1024 },
    // keepalived's misc_timeout defaults to the delay loop; a script is slower than a connect
    timeout: { ...activeOptionsProperties.timeout, default: '5s' },
  },
  required: ['path'],
  probe: (ctx, options) => scriptProbe(options, ctx.logger),
});
