// What /proc says about CPU use: of a process tree, of the whole machine, and the time
// threads waited for a core. The benchmarks use it to tell a slow peer from a busy machine.
import { readdirSync, readFileSync } from 'node:fs';

/** The processes of the machine: parent and CPU ticks (user + system) of each, from /proc. */
export function processes() {
  const stats = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const text = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
      stats.set(Number(d), { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // the process ended meanwhile
    }
  }
  return stats;
}

/** `pid` and every descendant. */
export function tree(pid, stats = processes()) {
  const pids = [];
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop();
    pids.push(p);
    for (const [q, s] of stats) if (s.ppid === p) todo.push(q);
  }
  return pids;
}

/** CPU seconds used so far by `pid` and every descendant (user + system, from /proc). */
export function treeCpu(pid) {
  const stats = processes();
  return tree(pid, stats).reduce((t, p) => t + (stats.get(p)?.ticks ?? 0), 0) / 100; // USER_HZ
}

/**
 * Seconds the threads of `pid` and its descendants have spent runnable but waiting for a
 * core so far (schedstat): on a shared machine, what a balancer's tail latency is made of.
 */
export function treeWait(pid) {
  let ns = 0;
  for (const p of tree(pid)) {
    try {
      for (const t of readdirSync(`/proc/${p}/task`))
        ns += Number(readFileSync(`/proc/${p}/task/${t}/schedstat`, 'utf8').split(' ')[1]);
    } catch {
      // ended meanwhile, or no schedstat (a kernel without CONFIG_SCHEDSTATS)
    }
  }
  return ns / 1e9;
}

/**
 * CPU seconds used so far by the whole machine (/proc/stat) and by this benchmark (its
 * processes, and those it ran to the end such as wrk): the difference over a run is the
 * other load the run shared the machine with.
 */
export function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = f.reduce((a, b) => a + b, 0) - f[3] - f[4]; // all but idle and iowait
  const self = readFileSync('/proc/self/stat', 'utf8');
  const g = self.slice(self.lastIndexOf(')') + 2).split(' ');
  const reaped = Number(g[13]) + Number(g[14]); // cutime + cstime
  return { busy: busy / 100, ours: treeCpu(process.pid) + reaped / 100 };
}
