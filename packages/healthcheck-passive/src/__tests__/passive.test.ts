import { EventBus, MetricsRegistry, type HealthVerdict } from '@fulcrum/kernel';
import { ManualClock, testContext, validOptions } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import passive, { type PassiveOptions } from '../index.js';

const service = {
  name: 'web',
  protocol: 'tcp' as const,
  listen: { address: '10.0.0.100', port: 80, family: 4 as const },
};
const target = (port: number) => ({
  service,
  server: `192.168.100.3:${port}`,
  address: '192.168.100.3',
  port,
  weight: 1,
});

function setup(options: Record<string, unknown> = {}) {
  const clock = new ManualClock();
  const events = new EventBus();
  const metrics = new MetricsRegistry();
  const inst = passive.create(
    testContext(passive, { clock, events, metrics }),
    validOptions(passive, options) as unknown as PassiveOptions,
  );
  return { clock, events, inst, metrics };
}

describe('passive: the plugin on the kernel event bus', () => {
  it('defaults are DPVS dest-check default', () => {
    expect(validOptions(passive, {})).toEqual({
      downNoticeNum: 1,
      downWait: 3000,
      upNoticeNum: 1,
      inhibitMin: 5000,
      inhibitMax: 3_600_000,
      jitter: 0,
    });
  });

  it('listens only to its own server, reports DOWN and UP-WARM, and unsubscribes on stop', () => {
    const { clock, events, inst } = setup();
    const a: HealthVerdict[] = [];
    const b: HealthVerdict[] = [];
    const wa = inst.watch(target(80), (v) => a.push(v));
    const wb = inst.watch(target(81), (v) => b.push(v));
    events.emit('health:signal', {
      service: 'other',
      server: '192.168.100.3:80',
      ok: false,
      reason: 'refused',
    });
    expect(a).toEqual([]);
    events.emit('health:signal', {
      service: 'web',
      server: '192.168.100.3:80',
      ok: false,
      reason: 'refused',
    });
    expect(a).toHaveLength(1);
    expect(a[0]!.up).toBe(false);
    expect(a[0]!.reason).toMatch(/^DOWN: 1 failure \(refused\); inhibited for 5s$/);
    expect(b).toEqual([]);
    clock.advance(5000);
    expect(a[1]).toMatchObject({ up: true });
    expect(a[1]!.reason).toMatch(/^UP-WARM/);
    events.emit('health:signal', { service: 'web', server: '192.168.100.3:80', ok: true, reason: 'syn-ack' });
    expect(a[2]).toMatchObject({ up: true });
    expect(a[2]!.reason).toMatch(/^UP: .*syn-ack/);
    wa.stop();
    wb.stop();
    expect(events.listenerCount('health:signal')).toBe(0);
    events.emit('health:signal', {
      service: 'web',
      server: '192.168.100.3:80',
      ok: false,
      reason: 'refused',
    });
    expect(a).toHaveLength(3);
    expect(clock.pending).toBe(0);
  });

  it('fulcrum_server_inhibited is 1 while DOWN, and forgotten when the watch stops', async () => {
    const { clock, events, inst, metrics } = setup();
    const w = inst.watch(target(80), () => {});
    const gauge = async () =>
      /fulcrum_server_inhibited\{service="web",server="192.168.100.3:80"\} (\d)/.exec(
        await metrics.text(),
      )?.[1];
    expect(await gauge()).toBe('0');
    events.emit('health:signal', {
      service: 'web',
      server: '192.168.100.3:80',
      ok: false,
      reason: 'refused',
    });
    expect(await gauge()).toBe('1');
    clock.advance(5000);
    expect(await gauge()).toBe('0');
    expect(await metrics.text()).toMatch(/fulcrum_passive_transitions_total\{service="web",state="down"\} 1/);
    w.stop();
    expect(await gauge()).toBeUndefined();
  });

  it('one bus listener however many servers it watches', () => {
    const { events, inst } = setup();
    const seen = new Map<number, number>();
    const watches = Array.from({ length: 1000 }, (_, i) =>
      inst.watch(target(1000 + i), () => seen.set(i, (seen.get(i) ?? 0) + 1)),
    );
    expect(events.listenerCount('health:signal')).toBe(1);
    events.emit('health:signal', {
      service: 'web',
      server: '192.168.100.3:1500',
      ok: false,
      reason: 'refused',
    });
    expect([...seen]).toEqual([[500, 1]]);
    for (const w of watches) w.stop();
    expect(events.listenerCount('health:signal')).toBe(0);
  });

  it('DOWN-WAIT keeps the server up; only DOWN is a down verdict', () => {
    const { events, inst } = setup({ downNoticeNum: 2, downWait: '3s' });
    const seen: HealthVerdict[] = [];
    const w = inst.watch(target(80), (v) => seen.push(v));
    const fail = () =>
      events.emit('health:signal', {
        service: 'web',
        server: '192.168.100.3:80',
        ok: false,
        reason: 'timeout',
      });
    fail();
    expect(seen.map((v) => [v.up, v.reason.split(':')[0]])).toEqual([[true, 'DOWN-WAIT']]);
    fail();
    expect(seen.map((v) => [v.up, v.reason.split(':')[0]])).toEqual([
      [true, 'DOWN-WAIT'],
      [false, 'DOWN'],
    ]);
    w.stop();
  });
});
