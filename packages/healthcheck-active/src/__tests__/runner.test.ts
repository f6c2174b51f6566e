import type { HealthVerdict, MetricsRegistry } from '@fulcrum/kernel';
import { ManualClock, healthCheckCases, testContext, validOptions } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { defineActiveCheck, type ActiveOptions, type ProbeResult, type ProbeTarget } from '../index.js';

type Script = (n: number, target: ProbeTarget, signal: AbortSignal) => ProbeResult | Promise<ProbeResult>;

/** A checker whose probe answers from a script; records when it was called. */
function scripted(script: Script) {
  const calls: { at: number; target: ProbeTarget; signal: AbortSignal }[] = [];
  let clock!: ManualClock;
  const plugin = defineActiveCheck<ActiveOptions>({
    name: 'scripted',
    kernel: '^0.1.0',
    probe: () => async (target, signal) => {
      calls.push({ at: clock.now(), target, signal });
      return script(calls.length, target, signal);
    },
  });
  const start = (options: Record<string, unknown>, metrics?: MetricsRegistry) => {
    clock = new ManualClock();
    const ctx = testContext(plugin, { clock, ...(metrics ? { metrics } : {}) });
    const inst = plugin.create(ctx, validOptions(plugin, options) as unknown as ActiveOptions);
    const verdicts: (HealthVerdict & { at: number })[] = [];
    const watch = inst.watch(
      {
        service: ctx.service!,
        server: '10.1.1.1:80',
        address: '10.1.1.1',
        port: 80,
        weight: 1,
      },
      (v) => verdicts.push({ ...v, at: clock.now() }),
    );
    // timer by timer, letting the probes' promises settle in between, so times are exact
    const advance = async (ms: number) => {
      const until = clock.now() + ms;
      for (;;) {
        await new Promise((r) => setImmediate(r));
        const next = clock.nextDue();
        if (next === undefined || next > until) break;
        clock.advance(next - clock.now());
      }
      clock.advance(until - clock.now());
      await new Promise((r) => setImmediate(r));
    };
    return { clock, inst, watch, verdicts, advance };
  };
  return { plugin, calls, start };
}

const OK: ProbeResult = { ok: true, reason: 'connected' };
const REFUSED: ProbeResult = { ok: false, reason: 'connect ECONNREFUSED', code: 'refused' };

describe('a checker made with defineActiveCheck passes the health-check conformance suite', () => {
  for (const c of healthCheckCases(scripted(() => OK).plugin, { options: { warmup: 0 } })) it(c.name, c.run);
});

describe('active runner: scheduling, retries, rise/fall, alpha', () => {
  it('checks every interval after the previous check ends, first within warmup', async () => {
    const s = scripted(() => OK);
    const r = s.start({ interval: '1s', warmup: '500ms' });
    await r.advance(3600);
    expect(s.calls.length).toBe(4);
    expect(s.calls[0]!.at).toBeLessThan(500);
    const gaps = s.calls.slice(1).map((c, i) => c.at - s.calls[i]!.at);
    expect(gaps).toEqual([1000, 1000, 1000]);
    expect(r.verdicts).toEqual([]); // up from the start, and still up: nothing to say
    r.watch.stop();
    expect(r.clock.pending).toBe(0);
  });

  it('fall: an up server goes down after fall failed checks in a row; rise brings it back', async () => {
    // checks: ok, fail, ok, fail, fail, fail (down at 6), ok, ok (up at 8)
    const plan = [OK, REFUSED, OK, REFUSED, REFUSED, REFUSED, OK, OK, OK];
    const s = scripted((n) => plan[n - 1] ?? OK);
    const r = s.start({ interval: '1s', warmup: 0, fall: 3, rise: 2 });
    await r.advance(8500);
    expect(r.verdicts.map((v) => [v.up, v.at])).toEqual([
      [false, 5000],
      [true, 7000],
    ]);
    expect(r.verdicts[0]!.reason).toBe('connect ECONNREFUSED (3 checks in a row)');
    r.watch.stop();
  });

  it('retries: a check fails only when 1 + retries attempts, retryDelay apart, all fail', async () => {
    const plan = [REFUSED, REFUSED, OK, REFUSED, REFUSED, REFUSED];
    const s = scripted((n) => plan[n - 1] ?? OK);
    const r = s.start({ interval: '10s', warmup: 0, retries: 2, retryDelay: '1s' });
    await r.advance(100);
    await r.advance(2000);
    expect(s.calls.map((c) => c.at)).toEqual([0, 1000, 2000]);
    expect(r.verdicts).toEqual([]);
    await r.advance(10_000 + 2000);
    expect(s.calls.map((c) => c.at)).toEqual([0, 1000, 2000, 12_000, 13_000, 14_000]);
    expect(r.verdicts).toHaveLength(1);
    expect(r.verdicts[0]).toMatchObject({
      up: false,
      reason: 'connect ECONNREFUSED (attempt 3/3)',
      at: 14_000,
    });
    r.watch.stop();
  });

  it('timeout: a probe that never answers fails with a reason, and its signal is aborted', async () => {
    const s = scripted(() => new Promise<ProbeResult>(() => {}));
    const r = s.start({ interval: '5s', warmup: 0, timeout: '2s' });
    await r.advance(2010);
    expect(r.verdicts).toEqual([{ up: false, reason: 'timeout after 2s', at: 2000 }]);
    expect(s.calls[0]!.signal.aborted).toBe(true);
    await r.advance(5000);
    expect(s.calls.map((c) => c.at)).toEqual([0, 7000]);
    r.watch.stop();
    expect(s.calls[1]!.signal.aborted, 'stop() aborts the attempt in flight').toBe(true);
  });

  it('a probe that throws or rejects is a failure with its message', async () => {
    const s = scripted((n) => {
      if (n === 1) throw new Error('boom');
      return Promise.reject(new Error('kaput'));
    });
    const r = s.start({ interval: '1s', warmup: 0, fall: 1, initialState: 'up' });
    await r.advance(50);
    expect(r.verdicts[0]).toMatchObject({ up: false, reason: 'boom' });
    r.watch.stop();
  });

  it('initialState down (alpha): down at once, up after rise passed checks', async () => {
    const s = scripted(() => OK);
    const r = s.start({ interval: '1s', warmup: 0, initialState: 'down', rise: 2 });
    expect(r.verdicts).toEqual([{ up: false, reason: 'initial state down (alpha): not checked yet', at: 0 }]);
    await r.advance(1500);
    expect(r.verdicts.map((v) => [v.up, v.at])).toEqual([
      [false, 0],
      [true, 1000],
    ]);
    expect(r.verdicts[1]!.reason).toBe('connected (2 checks in a row)');
    r.watch.stop();
  });

  it('a dynamic weight is reported when it changes, and only then', async () => {
    const weights = [5, 5, 7, 7];
    const s = scripted((n) => ({ ok: true, reason: `exit ${weights[n - 1]! + 2}`, weight: weights[n - 1] }));
    const r = s.start({ interval: '1s', warmup: 0 });
    await r.advance(3500);
    expect(r.verdicts.map((v) => [v.up, v.weight, v.at])).toEqual([
      [true, 5, 0],
      [true, 7, 2000],
    ]);
    r.watch.stop();
  });

  it('probes the address/port override, from bindTo', async () => {
    const s = scripted(() => OK);
    const r = s.start({ warmup: 0, address: '10.9.9.9', port: 8081, bindTo: '10.0.0.2', timeout: '750ms' });
    await r.advance(10);
    expect(s.calls[0]!.target).toMatchObject({
      connectAddress: '10.9.9.9',
      connectPort: 8081,
      bindTo: '10.0.0.2',
      timeoutMs: 750,
      server: '10.1.1.1:80',
    });
    r.watch.stop();
  });

  it('close() stops every watch', async () => {
    const s = scripted(() => OK);
    const r = s.start({ interval: '1s', warmup: 0 });
    await r.advance(10);
    r.inst.close?.();
    await r.advance(5000);
    expect(s.calls).toHaveLength(1);
    expect(r.clock.pending).toBe(0);
  });

  it('records duration and failure metrics', async () => {
    const { MetricsRegistry } = await import('@fulcrum/kernel');
    const metrics = new MetricsRegistry();
    const s = scripted((n) => (n === 1 ? REFUSED : OK));
    const r = s.start({ interval: '1s', warmup: 0 }, metrics);
    await r.advance(1500);
    r.watch.stop();
    const text = await metrics.text();
    expect(text).toMatch(
      /fulcrum_healthcheck_failures_total\{service="conformance",checker="scripted",reason="refused"\} 1/,
    );
    expect(text).toMatch(
      /fulcrum_healthcheck_duration_seconds_count\{service="conformance",checker="scripted",result="up"\} 1/,
    );
  });
});
