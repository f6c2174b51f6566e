// Starting and stopping a real HAProxy for the peer tests: its own config in a temporary
// directory, ephemeral ports on loopback, readiness seen through its stats socket appearing,
// and a stop by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

export async function freePort(host: string): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, host, r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export interface Haproxy {
  pid: number;
  /** Everything HAProxy printed (its raw log lines, with `log stdout format raw`). */
  output(): string;
  stop(): Promise<void>;
}

export async function startHaproxy(dir: string, name: string, config: string): Promise<Haproxy> {
  const sock = join(dir, `${name}.sock`);
  const cfg = join(dir, `${name}.cfg`);
  writeFileSync(cfg, `global\n  maxconn 200\n  stats socket ${sock}\n${config}`);
  const child: ChildProcess = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const deadline = Date.now() + 10_000;
  while (!existsSync(sock)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`haproxy did not start (exit ${child.exitCode}):\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return {
    pid: child.pid!,
    output: () => out,
    stop: async () => {
      if (child.exitCode === null) process.kill(child.pid!, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGKILL');
    },
  };
}
