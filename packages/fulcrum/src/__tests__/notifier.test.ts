import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import {
  createKernel,
  defineHealthCheck,
  defineScheduler,
  type HealthVerdict,
  type ServiceInput,
} from '@fulcrum/kernel';
import { createMemoryDataplane } from '@fulcrum/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../logger.js';
import { Notifier } from '../notifier.js';

const dir = mkdtempSync(join(tmpdir(), 'fulcrum-notify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return file;
}

const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
  create: () => ({
    compile: (v) => ({
      kind: 'sequence',
      sequence: v.realServers.filter((r) => r.weight > 0).map((r) => r.index),
    }),
  }),
});

async function setup(service: Partial<ServiceInput>, timeoutMs = 5000) {
  const reporters = new Map<string, (v: HealthVerdict) => void>();
  const manual = defineHealthCheck({
    name: 'manual',
    kernel: '^0.1.0',
    optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({ watch: (t, report) => (reporters.set(t.server, report), { stop: () => {} }) }),
  });
  const kernel = createKernel({ plugins: [rr, manual, createMemoryDataplane().plugin] });
  const out = new PassThrough();
  const lines: Record<string, unknown>[] = [];
  out.on('data', (d: Buffer) =>
    d
      .toString()
      .split('\n')
      .filter(Boolean)
      .forEach((l) => lines.push(JSON.parse(l))),
  );
  const notifier = new Notifier(kernel, createLogger('json', 'info', out), {
    timeoutMs,
    maxOutputBytes: 1024,
  });
  await kernel.apply({
    dataplane: 'memory',
    services: [
      {
        name: 'web',
        listen: '127.0.0.1:80',
        scheduler: 'rr',
        healthChecks: ['manual'],
        realServers: [{ address: '127.0.0.1:9001' }, { address: '[::1]:9002' }],
        ...service,
      },
    ],
  });
  const report = async (server: string, up: boolean) => {
    reporters.get(server)!({ up, reason: up ? 'ok' : 'connect ECONNREFUSED' });
    await new Promise((r) => setImmediate(r));
  };
  return { kernel, notifier, report, lines };
}

describe('Notifier', () => {
  it('runs notify down/up with the server in the environment, argv without a shell', async () => {
    const log = join(dir, 'env.log');
    const s = script(
      'record.sh',
      `printf '%s|%s|%s|%s|%s|%s|%s\\n' "$1" "$FULCRUM_HOOK" "$FULCRUM_SERVICE" "$FULCRUM_SERVER_ADDRESS" "$FULCRUM_SERVER_PORT" "$FULCRUM_STATE" "$FULCRUM_REASON" >> ${log}`,
    );
    const { kernel, notifier, report } = await setup({
      notify: { up: [s, 'it came; back'], down: [s, '$(reboot)'] },
    });
    await report('[::1]:9002', false);
    await report('[::1]:9002', true);
    await notifier.close();
    expect(readFileSync(log, 'utf8').trim().split('\n')).toEqual([
      '$(reboot)|down|web|::1|9002|down|manual: connect ECONNREFUSED',
      'it came; back|up|web|::1|9002|up|manual: ok',
    ]);
    expect(await kernel.metrics.text()).toMatch(
      /fulcrum_notify_runs_total\{service="web",hook="up",result="ok"\} 1/,
    );
    await kernel.close();
  });

  it('kills a command that hangs, counts failures, and bounds output', async () => {
    const hang = script('hang.sh', `sleep 30 & echo $! > ${join(dir, 'child.pid')}; wait`);
    const fail = script('fail.sh', 'echo nope >&2; exit 3');
    const loud = script('loud.sh', 'head -c 5000000 /dev/zero | tr "\\0" x');
    const { kernel, notifier, report, lines } = await setup(
      { notify: { down: hang, up: fail, quorumDown: loud }, quorum: 2 },
      300,
    );
    const started = Date.now();
    await report('127.0.0.1:9001', false); // down → hang, and quorum lost → loud
    await report('127.0.0.1:9001', true); // up → fail
    await notifier.close();
    expect(Date.now() - started).toBeLessThan(5000);
    const byHook = Object.fromEntries(lines.filter((l) => l.event === 'notify').map((l) => [l.hook, l]));
    expect(byHook.down).toMatchObject({ result: 'timeout' });
    expect(byHook.up).toMatchObject({ result: 'failed', exitCode: 3, stderr: 'nope\n' });
    expect(byHook.quorumDown).toMatchObject({ result: 'ok' });
    expect((byHook.quorumDown!.stdout as string).length).toBe(1024);
    // The forked child of the hung command was killed with it.
    const orphan = Number(readFileSync(join(dir, 'child.pid'), 'utf8'));
    await new Promise((r) => setTimeout(r, 100));
    const stat = existsSync(`/proc/${orphan}/stat`) ? readFileSync(`/proc/${orphan}/stat`, 'utf8') : '';
    expect(stat === '' || / Z /.test(stat)).toBe(true); // gone, or dead awaiting its reaper
    const text = await kernel.metrics.text();
    expect(text).toMatch(/hook="down",result="timeout"\} 1/);
    expect(text).toMatch(/hook="up",result="failed"\} 1/);
    await kernel.close();
  });

  it('does nothing for services without notify commands, and a missing command is a counted failure', async () => {
    const { kernel, notifier, report, lines } = await setup({ notify: { down: join(dir, 'not-there.sh') } });
    await report('127.0.0.1:9001', false);
    await report('127.0.0.1:9001', true); // no `up` command: nothing runs
    await notifier.close();
    expect(lines.filter((l) => l.event === 'notify').map((l) => [l.hook, l.result])).toEqual([
      ['down', 'failed'],
    ]);
    expect(existsSync(join(dir, 'not-there.sh'))).toBe(false);
    await kernel.close();
  });
});
