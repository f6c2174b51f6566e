import { healthCheckCases } from '@fulcrum/testkit';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import script, { exitVerdict } from '../index.js';
import { watchCheck } from '@fulcrum/testkit';

describe('script passes the health-check conformance suite', () => {
  for (const c of healthCheckCases(script, { options: { path: '/bin/true' } })) it(c.name, c.run);
});

describe('exitVerdict: keepalived MISC_CHECK and misc_dynamic', () => {
  it.each([
    [0, false, { ok: true, reason: 'exit 0' }],
    [1, false, { ok: false, reason: 'exit 1', code: 'exit' }],
    [7, false, { ok: false, reason: 'exit 7', code: 'exit' }],
    [0, true, { ok: true, reason: 'exit 0' }],
    [1, true, { ok: false, reason: 'exit 1', code: 'exit' }],
    [2, true, { ok: true, reason: 'exit 2', weight: 0 }],
    [12, true, { ok: true, reason: 'exit 12', weight: 10 }],
    [255, true, { ok: true, reason: 'exit 255', weight: 253 }],
  ])('exit %i, dynamic %s', (code, dynamic, verdict) => {
    expect(exitVerdict(code, dynamic)).toEqual(verdict);
  });
});

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-script-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function sh(body: string): string {
  const file = join(dir, `check-${++n}.sh`);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}
/** Running (a zombie waiting for a parent that does not reap, as in some containers, is dead). */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX]/.test(stat);
  } catch {
    return false;
  }
};
const pidsToReap: number[] = [];
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const f of cleanup.splice(0)) f();
  for (const pid of pidsToReap.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

const fast = { interval: '30ms', timeout: '2s', warmup: 0 };
function watch(options: Record<string, unknown>) {
  const w = watchCheck(script, { ...fast, ...options }, '127.0.0.1', 8080);
  cleanup.push(w.stop);
  return w;
}

describe('script (MISC_CHECK) running real processes', () => {
  it('exit 0 is up, exit 1 down with the first line of its output in the reason', async () => {
    const flag = join(dir, 'healthy');
    writeFileSync(flag, '');
    const w = watch({
      path: sh(`[ -e "${flag}" ] && exit 0; echo "backend is sad" >&2; exit 1`),
      initialState: 'down',
    });
    await w.next();
    expect(await w.next()).toMatchObject({ up: true, reason: 'exit 0' });
    rmSync(flag);
    expect(await w.next()).toMatchObject({ up: false, reason: 'exit 1: backend is sad' });
  });

  it('gets the server in its environment and its args', async () => {
    const out = join(dir, 'env.txt');
    const w = watch({
      path: sh(
        `echo "$FULCRUM_SERVICE $FULCRUM_SERVER $FULCRUM_SERVER_ADDRESS $FULCRUM_SERVER_PORT $EXTRA $1 $2" > "${out}"`,
      ),
      args: ['one', 'two words'],
      env: { EXTRA: 'x' },
      port: 9090,
      initialState: 'down',
    });
    await w.next();
    await w.next();
    expect(readFileSync(out, 'utf8').trim()).toBe('web 127.0.0.1:8080 127.0.0.1 9090 x one two words');
  });

  it('dynamic: exit 2–255 is up with weight = code − 2; exit 0 restores the configured weight', async () => {
    const codeFile = join(dir, 'code');
    writeFileSync(codeFile, '12');
    const w = watch({ path: sh(`exit $(cat "${codeFile}")`), dynamic: true });
    expect(await w.next()).toMatchObject({ up: true, reason: 'exit 12', weight: 10 });
    writeFileSync(codeFile, '3');
    expect(await w.next()).toMatchObject({ up: true, reason: 'exit 3', weight: 1 });
    writeFileSync(codeFile, '0');
    const back = await w.next();
    expect(back).toMatchObject({ up: true, reason: 'exit 0' });
    expect(back.weight).toBeUndefined();
  });

  it('a script that hangs is killed at the timeout, with what it forked', async () => {
    const pids = join(dir, 'hang.pids');
    const w = watch({
      path: sh(`sleep 30 & echo $! > "${pids}"; echo $$ >> "${pids}"; wait`),
      timeout: '300ms',
    });
    const v = await w.next(3000);
    expect(v).toMatchObject({ up: false, reason: 'timeout after 300ms' });
    expect(w.verdicts[0]!.at).toBeLessThan(1500);
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    pidsToReap.push(...started);
    await new Promise((r) => setTimeout(r, 100));
    for (const pid of started) expect(alive(pid), `pid ${pid} was killed`).toBe(false);
  });

  it('a script that exits but leaves a child holding its stdout: verdict at exit, child killed', async () => {
    const pidFile = join(dir, 'fork.pid');
    const w = watch({ path: sh(`sleep 30 & echo $! > "${pidFile}"; exit 0`), initialState: 'down' });
    await w.next();
    expect(await w.next(1500)).toMatchObject({ up: true, reason: 'exit 0' });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    pidsToReap.push(pid);
    await new Promise((r) => setTimeout(r, 100));
    expect(alive(pid)).toBe(false);
  });

  it('megabytes of output are read and dropped past maxOutput; the check still completes', async () => {
    const w = watch({
      path: sh('head -c 30000000 /dev/zero | tr "\\0" "y"; echo; echo "too much" >&2; exit 1'),
      maxOutput: 1024,
      initialState: 'up',
      timeout: '10s',
    });
    const before = process.memoryUsage().arrayBuffers;
    const v = await w.next(15_000);
    expect(v.up).toBe(false);
    expect(v.reason).toBe('exit 1: too much');
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
  });

  it('a path that does not exist or cannot run is a failure with the reason', async () => {
    const w = watch({ path: join(dir, 'no-such-script') });
    expect((await w.next()).reason).toMatch(/^spawn .*no-such-script: spawn .* ENOENT$/);
    const notExec = join(dir, 'not-executable.sh');
    writeFileSync(notExec, '#!/bin/sh\nexit 0\n');
    const w2 = watch({ path: notExec });
    expect((await w2.next()).reason).toMatch(/EACCES/);
    expect(existsSync(notExec)).toBe(true);
  });
});
