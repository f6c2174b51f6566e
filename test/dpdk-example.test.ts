import { nativeUnavailableReason } from '@fulcrum/dataplane-dpdk';
import { requires } from '@fulcrum/testkit';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// examples/dpdk, as an operator runs it: run.mjs builds the namespaces and starts the
// servers and `fulcrum run` with the shipped config in the balancer's namespace; curl and
// ping from the client's namespace; Ctrl-C removes everything.
const root = new URL('..', import.meta.url).pathname;
const need = requires({
  root: true,
  commands: ['ip', 'nsenter', 'ethtool', 'curl', 'ping'],
  check: () =>
    nativeUnavailableReason() ??
    (existsSync(`${root}packages/fulcrum/dist/bin.js`)
      ? undefined
      : 'needs the built packages (npm run build)'),
});

describe.skipIf(need.skip)(`examples/dpdk: the daemon with the DPDK dataplane${need.note}`, () => {
  it('balances curl by wlc 3:1 behind SYNPROXY, answers ping, loses no request when a server dies, and Ctrl-C cleans up', async () => {
    const name = `fx${process.pid % 100000}`;
    const ns = (n: string) => `${name}-${n}`;
    const example = spawn(process.execPath, ['examples/dpdk/run.mjs', '--name', name], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    example.stdout.on('data', (d) => (out += d));
    example.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | null>((r) => example.on('exit', (code) => r(code)));
    const inNs = (n: string, ...argv: string[]) =>
      execFileSync('ip', ['netns', 'exec', ns(n), ...argv], { encoding: 'utf8', timeout: 10_000 });
    const curl = () => inNs('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100/').trim();
    try {
      const deadline = Date.now() + 30_000;
      while (
        !/"event":"started"/.test(out) ||
        (out.match(/listening on 10\.2\.0\.1[12]:80/g) ?? []).length < 2
      ) {
        if (example.exitCode !== null || Date.now() > deadline)
          throw new Error(`the example did not start:\n${out}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const answers = Array.from({ length: 8 }, () => curl().split(' ')[1]);
      // IPVS wlc over (active × 256 + inactive) / weight, each connection counted until it expires.
      expect(answers).toEqual(['one', 'two', 'one', 'one', 'one', 'two', 'one', 'one']);
      expect(inNs('cli', 'ping', '-c', '1', '-W', '2', '10.1.0.100')).toMatch(/1 received/);
      // Every handshake answered with a cookie (the counters reach /metrics within a second or two).
      const answered = () =>
        Number(
          /fulcrum_dpdk_synproxy_total\{event="syn_answered"\} (\d+)/.exec(
            inNs('lb', 'curl', '-s', '127.0.0.1:9100/metrics'),
          )?.[1] ?? 0,
        );
      for (const until = Date.now() + 5000; answered() < 8 && Date.now() < until;)
        await new Promise((r) => setTimeout(r, 250));
      expect(answered()).toBeGreaterThanOrEqual(8);

      // Server two dies: SYNPROXY moves the handshake it refuses to server one, and the
      // passive check takes it out. No curl fails.
      const two = Number(/backend two listening on 10\.2\.0\.12:80 \(pid (\d+)\)/.exec(out)?.[1]);
      process.kill(two, 'SIGKILL');
      const after = Array.from({ length: 6 }, () => curl());
      expect(after.every((a) => a.startsWith('backend one'))).toBe(true);
    } finally {
      example.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const n of ['lb', 'cli', 'srv']) expect(left).not.toContain(ns(n));
    // Nor the EAL's runtime directory for the example's file prefix.
    expect(existsSync(`/var/run/dpdk/${name}`)).toBe(false);
  }, 90_000);
});
