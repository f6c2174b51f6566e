import { describe, expect, it } from 'vitest';
import { formatDuration, formatEndpoint, ManualClock, parseDuration, parseEndpoint } from '../index.js';

describe('durations', () => {
  it.each([
    [300, 300_000],
    [0.5, 500],
    ['500ms', 500],
    ['2s', 2000],
    ['1m', 60_000],
    ['1.5h', 5_400_000],
    ['1d', 86_400_000],
  ])('%j is %d ms', (input, ms) => expect(parseDuration(input)).toBe(ms));

  it.each([['2 sec'], ['-1s'], [-1], ['s'], [''], [null], [{}], [Number.NaN], ['1e3s']])(
    '%j is not a duration',
    (input) => expect(parseDuration(input)).toBeUndefined(),
  );

  it('formats back', () => {
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(120_000)).toBe('2m');
    expect(formatDuration(7)).toBe('7ms');
  });
});

describe('endpoints', () => {
  it('parses IPv4 and bracketed IPv6', () => {
    expect(parseEndpoint('127.0.0.1:8080')).toEqual({ address: '127.0.0.1', port: 8080, family: 4 });
    expect(parseEndpoint('[::1]:80')).toEqual({ address: '::1', port: 80, family: 6 });
    expect(formatEndpoint({ address: '::1', port: 80 })).toBe('[::1]:80');
  });
  it.each([
    '127.0.0.1',
    '::1:80',
    '127.0.0.1:0',
    '127.0.0.1:65536',
    'localhost:80',
    '300.1.1.1:80',
    '[::1]',
    ' 127.0.0.1:80',
  ])('rejects %j', (text) => expect(parseEndpoint(text)).toBeUndefined());
});

describe('ManualClock', () => {
  it('fires timers in time order, ties in the order they were set', () => {
    const clock = new ManualClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b@20'), 20);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('c@20'), 20);
    clock.advance(15);
    expect(fired).toEqual(['a@10']);
    expect(clock.now()).toBe(15);
    clock.advance(5);
    expect(fired).toEqual(['a@10', 'b@20', 'c@20']);
  });

  it('runs intervals once per period and stops on cancel', () => {
    const clock = new ManualClock(1000);
    let n = 0;
    const t = clock.setInterval(() => n++, 100);
    clock.advance(1000);
    expect(n).toBe(10);
    t.cancel();
    clock.advance(1000);
    expect(n).toBe(10);
    expect(clock.pending).toBe(0);
  });

  it('fires a timer set by a timer in the same advance when it falls due', () => {
    const clock = new ManualClock();
    const at: number[] = [];
    clock.setTimeout(() => clock.setTimeout(() => at.push(clock.now()), 5), 5);
    clock.advance(10);
    expect(at).toEqual([10]);
  });

  it('refuses to go backwards and bounds runAll', () => {
    const clock = new ManualClock();
    expect(() => clock.advance(-1)).toThrow(RangeError);
    clock.setInterval(() => {}, 1);
    expect(() => clock.runAll(50)).toThrow(/still 1 timers/);
  });
});

describe('MetricsRegistry', () => {
  it('prefixes, shares metrics by name, and runs collect hooks at scrape time', async () => {
    const { MetricsRegistry } = await import('../index.js');
    const m = new MetricsRegistry();
    let hot = 0;
    const g: { set(v: number): void } = m.gauge({
      name: 'fulcrum_test_hot',
      help: 'h',
      collect: (): void => g.set(hot),
    });
    expect(m.gauge({ name: 'fulcrum_test_hot', help: 'h' })).toBe(g);
    hot = 42;
    expect(await m.text()).toMatch(/^fulcrum_test_hot 42$/m);
    expect(() => m.counter({ name: 'requests', help: 'x' })).toThrow(/must match/);
  });
});
