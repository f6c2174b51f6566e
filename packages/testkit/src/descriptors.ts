import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';

/** This process's descriptors taken up to its limit; see {@link exhaustDescriptors}. */
export interface DescriptorSqueeze {
  /** Descriptors held open to fill the table. */
  readonly held: number;
  /** Closes `n` of the held descriptors, so exactly `n` are free for the code under test. */
  release(n: number): void;
  /** Closes every held descriptor and puts the limit back as it was. */
  restore(): void;
}

/**
 * Leaves this process with no free file descriptor, so the next `accept(2)`, `socket(2)` or
 * `open(2)` fails with EMFILE — for testing what a dataplane does when it runs out.
 *
 * The soft `RLIMIT_NOFILE` is lowered (with `prlimit(1)`, as Node has no setrlimit) to
 * `headroom` above the highest descriptor now open, then `/dev/null` is opened until the
 * kernel refuses. Filling the table, rather than setting the limit to a count, makes the
 * result exact: the kernel hands out the lowest free number, and a count says nothing about
 * holes. While squeezed, this process cannot spawn children or open files: start what the
 * test needs first, and talk to it over pipes already open.
 */
export function exhaustDescriptors(headroom = 64): DescriptorSqueeze {
  const pid = String(process.pid);
  const [soft, hard] = execFileSync('prlimit', [
    '--pid',
    pid,
    '--nofile',
    '--output',
    'SOFT,HARD',
    '--noheadings',
  ])
    .toString()
    .trim()
    .split(/\s+/);
  const highest = Math.max(...readdirSync('/proc/self/fd').map(Number));
  execFileSync('prlimit', ['--pid', pid, `--nofile=${highest + headroom}:${hard}`]);
  const held: number[] = [];
  const undo = (): void => {
    for (const fd of held.splice(0)) closeSync(fd);
    execFileSync('prlimit', ['--pid', pid, `--nofile=${soft}:${hard}`]);
  };
  for (;;) {
    try {
      held.push(openSync('/dev/null', 'r'));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EMFILE') break;
      undo();
      throw e;
    }
    if (held.length > headroom + 1024) {
      undo();
      throw new Error('exhaustDescriptors: the lowered limit did not take effect');
    }
  }
  return {
    get held() {
      return held.length;
    },
    release(n) {
      for (const fd of held.splice(held.length - n, n)) closeSync(fd);
    },
    restore: undo,
  };
}
