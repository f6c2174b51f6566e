import { execFileSync } from 'node:child_process';

export interface Requirement {
  /** Executables that must be on PATH (`haproxy`, `tshark`, `ip`…). */
  commands?: string[];
  /** The test needs root (network namespaces, raw sockets, DPDK). */
  root?: boolean;
  /** Any other condition, with the reason it is not met. */
  check?: () => string | undefined;
}

export interface RequirementResult {
  /** True when the tests must be skipped here. */
  skip: boolean;
  /** Empty when met; else `  [SKIPPED: …]`, to append to the describe() title so skips are visible. */
  note: string;
  reason?: string;
}

const onPath = (cmd: string) => {
  try {
    execFileSync('sh', ['-c', `command -v "$0"`, cmd], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/**
 * Whether a group of tests can run here. When it cannot, the reason goes into the test
 * title (never a silent skip); and under CI (`CI` set), where the project's scripts install
 * everything, a missing requirement is an error, not a skip.
 *
 * ```ts
 * const need = requires({ commands: ['haproxy'] });
 * describe.skipIf(need.skip)(`PROXY protocol against HAProxy${need.note}`, () => { … });
 * ```
 */
export function requires(req: Requirement): RequirementResult {
  const missing: string[] = [];
  if (req.root && process.getuid?.() !== 0) missing.push('needs root');
  const cmds = (req.commands ?? []).filter((c) => !onPath(c));
  if (cmds.length) missing.push(`needs ${cmds.join(', ')} on PATH (npm test installs them when run as root)`);
  const other = req.check?.();
  if (other) missing.push(other);
  if (!missing.length) return { skip: false, note: '' };
  const reason = missing.join('; ');
  if (process.env.CI) throw new Error(`CI must be able to run these tests, but: ${reason}`);
  process.stderr.write(`[fulcrum] skipping tests: ${reason}\n`);
  return { skip: true, note: `  [SKIPPED: ${reason}]`, reason };
}
