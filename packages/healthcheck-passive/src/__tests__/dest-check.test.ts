import { ManualClock } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import { DestCheck, type DestCheckConfig, type DestCheckState, type DestCheckTransition } from '../index.js';

const DPVS_DEFAULTS: DestCheckConfig = {
  downNoticeNum: 1,
  downWaitMs: 3000,
  upNoticeNum: 1,
  inhibitMinMs: 5000,
  inhibitMaxMs: 3_600_000,
};

/** `fail` / `ok` a signal, `wait` ms of time; then the state expected, and the next inhibit period. */
type Step = [op: 'fail' | 'ok' | 'wait', arg: number | string, state: DestCheckState, nextInhibitMs?: number];

function run(config: Partial<DestCheckConfig>, steps: Step[]) {
  const clock = new ManualClock();
  const transitions: (DestCheckTransition & { at: number })[] = [];
  const check = new DestCheck({ ...DPVS_DEFAULTS, ...config }, clock, (t) =>
    transitions.push({ ...t, at: clock.now() }),
  );
  steps.forEach(([op, arg, state, next], i) => {
    if (op === 'fail') check.failure(String(arg));
    else if (op === 'ok') check.success(String(arg));
    else clock.advance(Number(arg));
    const where = `step ${i} (${op} ${arg}) at ${clock.now()}ms`;
    expect(check.state, where).toBe(state);
    if (next !== undefined) expect(check.inhibitDurationMs, where).toBe(next);
  });
  check.stop();
  expect(clock.pending, 'stop() cancels every timer').toBe(0);
  return transitions;
}

describe('DestCheck: every transition of DPVS dest-check, with fake time', () => {
  const cases: { name: string; config?: Partial<DestCheckConfig>; steps: Step[] }[] = [
    {
      name: 'UP → DOWN on the first failure (downNoticeNum 1), UP-WARM after inhibitMin, UP on a success',
      steps: [
        ['ok', 'answered', 'up', 5000],
        ['fail', 'refused', 'down', 10_000],
        ['wait', 4999, 'down'],
        ['ok', 'ignored while inhibited', 'down', 10_000],
        ['fail', 'ignored while inhibited', 'down', 10_000],
        ['wait', 1, 'up-warm', 10_000],
        ['ok', 'answered', 'up', 5000],
        ['ok', 'answered', 'up', 5000],
      ],
    },
    {
      name: 'a failure in UP-WARM inhibits again for the doubled period: 5, 10, 20, 40 s',
      steps: [
        ['fail', 'refused', 'down', 10_000],
        ['wait', 5000, 'up-warm'],
        ['fail', 'refused', 'down', 20_000],
        ['wait', 9999, 'down'],
        ['wait', 1, 'up-warm'],
        ['fail', 'refused', 'down', 40_000],
        ['wait', 20_000, 'up-warm'],
        ['fail', 'refused', 'down', 80_000],
        ['wait', 39_999, 'down'],
        ['wait', 1, 'up-warm'],
      ],
    },
    {
      name: 'success in UP-WARM halves the period, floored at inhibitMin',
      steps: [
        ['fail', 'x', 'down', 10_000],
        ['wait', 5000, 'up-warm'],
        ['fail', 'x', 'down', 20_000],
        ['wait', 10_000, 'up-warm'],
        ['fail', 'x', 'down', 40_000],
        ['wait', 20_000, 'up-warm'],
        ['ok', 'answered', 'up', 20_000],
        ['fail', 'x', 'down', 40_000], // inhibited 20 s this time
        ['wait', 19_999, 'down'],
        ['wait', 1, 'up-warm'],
        ['ok', 'answered', 'up', 20_000],
        ['fail', 'x', 'down', 40_000],
        ['wait', 20_000, 'up-warm'],
        ['ok', 'answered', 'up', 20_000],
        ['fail', 'x', 'down', 40_000],
      ],
    },
    {
      name: 'halving never goes below inhibitMin',
      steps: [
        ['fail', 'x', 'down', 10_000],
        ['wait', 5000, 'up-warm'],
        ['ok', 'y', 'up', 5000],
        ['fail', 'x', 'down', 10_000],
        ['wait', 5000, 'up-warm'],
        ['ok', 'y', 'up', 5000],
      ],
    },
    {
      name: 'DOWN-WAIT: fewer than downNoticeNum failures within downWait go back to UP',
      config: { downNoticeNum: 3 },
      steps: [
        ['fail', 'refused', 'down-wait'],
        ['ok', 'answered', 'down-wait'],
        ['fail', 'refused', 'down-wait'],
        ['wait', 2999, 'down-wait'],
        ['wait', 1, 'up'],
        ['fail', 'refused', 'down-wait'],
        ['wait', 3000, 'up'],
      ],
    },
    {
      name: 'DOWN-WAIT: downNoticeNum failures within downWait inhibit, and the window timer is gone',
      config: { downNoticeNum: 3 },
      steps: [
        ['fail', 'refused', 'down-wait'],
        ['wait', 1000, 'down-wait'],
        ['fail', 'refused', 'down-wait'],
        ['wait', 1000, 'down-wait'],
        ['fail', 'refused', 'down', 10_000],
        ['wait', 1000, 'down'], // the down-wait window would have ended here
        ['wait', 4000, 'up-warm'],
        ['wait', 60_000, 'up-warm'], // no traffic: stays warm, still scheduled
      ],
    },
    {
      name: 'upNoticeNum 2: one success is not enough; a failure before the second inhibits',
      config: { upNoticeNum: 2 },
      steps: [
        ['fail', 'x', 'down', 10_000],
        ['wait', 5000, 'up-warm'],
        ['ok', 'y', 'up-warm', 10_000],
        ['fail', 'x', 'down', 20_000],
        ['wait', 10_000, 'up-warm'],
        ['ok', 'y', 'up-warm'],
        ['ok', 'y', 'up', 10_000],
      ],
    },
    {
      name: 'the period is clamped into [inhibitMin, inhibitMax]',
      config: { inhibitMinMs: 1000, inhibitMaxMs: 3000 },
      steps: [
        ['fail', 'x', 'down', 2000],
        ['wait', 1000, 'up-warm'],
        ['fail', 'x', 'down', 3000],
        ['wait', 2000, 'up-warm'],
        ['fail', 'x', 'down', 3000],
        ['wait', 2999, 'down'],
        ['wait', 1, 'up-warm'],
        ['fail', 'x', 'down', 3000],
        ['wait', 3000, 'up-warm'],
        ['ok', 'y', 'up', 1500],
        ['fail', 'x', 'down', 3000],
        ['wait', 1499, 'down'],
        ['wait', 1, 'up-warm'],
      ],
    },
  ];
  for (const c of cases) it(c.name, () => void run(c.config ?? {}, c.steps));

  it('a dead server is retried after 5, 10, 20, 40 … s and then every inhibitMax (3600 s)', () => {
    const clock = new ManualClock();
    const admitted: number[] = [];
    const check = new DestCheck(DPVS_DEFAULTS, clock, (t) => {
      if (t.to === 'up-warm') admitted.push(clock.now());
      // every re-admission costs the dead server one failed connection, as in the seed timeline
      if (t.to === 'up-warm') check.failure('refused');
    });
    check.failure('refused');
    clock.advance(6 * 3_600_000);
    check.stop();
    const gaps = admitted.map((at, i) => (at - (admitted[i - 1] ?? 0)) / 1000);
    expect(gaps.slice(0, 12)).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]);
    expect(new Set(gaps.slice(10))).toEqual(new Set([3600]));
  });

  it('reports each transition once with its reason and inhibit period', () => {
    const t = run({ downNoticeNum: 2 }, [
      ['fail', 'refused', 'down-wait'],
      ['fail', 'reset', 'down'],
      ['wait', 5000, 'up-warm'],
      ['ok', 'answered', 'up'],
    ]);
    expect(t.map((x) => [x.from, x.to, x.at, x.inhibitMs])).toEqual([
      ['up', 'down-wait', 0, undefined],
      ['down-wait', 'down', 0, 5000],
      ['down', 'up-warm', 5000, undefined],
      ['up-warm', 'up', 5000, undefined],
    ]);
    expect(t[0]!.reason).toContain('refused');
    expect(t[1]!.reason).toMatch(/2 failures \(reset\)/);
  });

  it('jitter spreads the inhibit timer within ± jitter / 2', () => {
    for (let i = 0; i < 50; i++) {
      const clock = new ManualClock();
      const check = new DestCheck({ ...DPVS_DEFAULTS, jitterMs: 1000 }, clock, () => {});
      check.failure('x');
      const until = check.inhibitUntil!;
      expect(until).toBeGreaterThanOrEqual(4500);
      expect(until).toBeLessThanOrEqual(5500);
      clock.advance(until);
      expect(check.state).toBe('up-warm');
      check.stop();
    }
  });

  it('after stop() nothing is reported and signals are ignored', () => {
    const clock = new ManualClock();
    const seen: string[] = [];
    const check = new DestCheck(DPVS_DEFAULTS, clock, (t) => seen.push(t.to));
    check.failure('x');
    check.stop();
    clock.advance(10_000);
    check.failure('x');
    check.success('y');
    expect(seen).toEqual(['down']);
  });
});
