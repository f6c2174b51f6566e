import { formatDuration, type Clock, type TimerHandle } from '@fulcrum/kernel';

/** DPVS's per-server states (ip_vs_dest.c); only DOWN takes the server out of scheduling. */
export type DestCheckState = 'up' | 'down-wait' | 'down' | 'up-warm';

export interface DestCheckConfig {
  /** Failures within `downWaitMs` that inhibit the server (DPVS `dest_down_notice_num`). */
  downNoticeNum: number;
  /** Window in which `downNoticeNum` failures must fall (DPVS `dest_down_wait`). */
  downWaitMs: number;
  /** Successes in UP-WARM that make the server UP again (DPVS `dest_up_notice_num`). */
  upNoticeNum: number;
  /** First and shortest inhibit period (DPVS `dest_inhibit_min`). */
  inhibitMinMs: number;
  /** Longest inhibit period (DPVS `dest_inhibit_max`). */
  inhibitMaxMs: number;
  /** Each inhibit timer is spread by ± jitterMs / 2 (DPVS spreads by ± 0.5 s); 0 for exact timers. */
  jitterMs?: number;
}

export interface DestCheckTransition {
  from: DestCheckState;
  to: DestCheckState;
  /** What caused it, in an operator's words. */
  reason: string;
  /** When `to` is DOWN: how long the server stays inhibited. */
  inhibitMs?: number;
}

/**
 * One real server's passive health, as DPVS's master lcore keeps it (dest->dfc.master):
 * failure signals count towards `downNoticeNum` within `downWait`; reaching it inhibits the
 * server for the current inhibit duration, which then doubles (capped at `inhibitMax`);
 * the timer's expiry re-admits it as UP-WARM; a failure there inhibits it again, and
 * `upNoticeNum` successes make it UP and halve the duration (floored at `inhibitMin`).
 * Single-threaded, so the slave/master notices of DPVS collapse into method calls.
 */
export class DestCheck {
  readonly #config: Required<DestCheckConfig>;
  readonly #clock: Clock;
  readonly #onChange: (t: DestCheckTransition) => void;
  #state: DestCheckState = 'up';
  #downNotices = 0;
  #warmUpCount = 0;
  #inhibitMs: number;
  #inhibitUntil: number | undefined;
  #timer: TimerHandle | undefined;
  #stopped = false;

  constructor(config: DestCheckConfig, clock: Clock, onChange: (t: DestCheckTransition) => void) {
    this.#config = { jitterMs: 0, ...config };
    this.#clock = clock;
    this.#onChange = onChange;
    this.#inhibitMs = config.inhibitMinMs;
  }

  get state(): DestCheckState {
    return this.#state;
  }

  /** The inhibit period the next DOWN will use. */
  get inhibitDurationMs(): number {
    return this.#inhibitMs;
  }

  /** When an inhibited server is re-admitted (clock time), or undefined when not DOWN. */
  get inhibitUntil(): number | undefined {
    return this.#inhibitUntil;
  }

  /** The dataplane saw the server fail (refused, reset, SYN timeout, UDP one-way expiry…). */
  failure(reason: string): void {
    if (this.#stopped) return;
    switch (this.#state) {
      case 'down':
        return; // DPVS ignores notices about an inhibited server
      case 'up-warm':
        return this.#inhibit(`failure while warming up (${reason})`);
      case 'up':
      case 'down-wait': {
        this.#downNotices++;
        const { downNoticeNum, downWaitMs } = this.#config;
        if (this.#downNotices >= downNoticeNum) {
          const n = this.#downNotices;
          return this.#inhibit(`${n} failure${n > 1 ? 's' : ''} (${reason})`);
        }
        if (this.#state === 'up') {
          this.#timer = this.#clock.setTimeout(() => this.#downWaitExpired(), downWaitMs);
          this.#move('down-wait', `failure 1 of ${downNoticeNum} (${reason})`);
        }
        return;
      }
    }
  }

  /** The dataplane saw the server answer. Only counts in UP-WARM, as in DPVS. */
  success(reason = 'server answered'): void {
    if (this.#stopped || this.#state !== 'up-warm') return;
    if (--this.#warmUpCount > 0) return;
    this.#inhibitMs = Math.max(this.#config.inhibitMinMs, Math.floor(this.#inhibitMs / 2));
    this.#move(
      'up',
      `${this.#config.upNoticeNum} success${this.#config.upNoticeNum > 1 ? 'es' : ''} while warming up (${reason})`,
    );
  }

  /** Cancels the timer; no transition is reported afterwards. */
  stop(): void {
    this.#stopped = true;
    this.#cancel();
  }

  #downWaitExpired(): void {
    this.#timer = undefined;
    const n = this.#downNotices;
    this.#downNotices = 0;
    this.#move('up', `${n} of ${this.#config.downNoticeNum} failures within down-wait; counting again`);
  }

  #inhibit(reason: string): void {
    this.#cancel();
    const { inhibitMinMs, inhibitMaxMs, jitterMs } = this.#config;
    const duration = Math.min(inhibitMaxMs, Math.max(inhibitMinMs, this.#inhibitMs));
    const delay = jitterMs > 0 ? Math.max(0, duration - jitterMs / 2 + Math.random() * jitterMs) : duration;
    this.#downNotices = 0;
    this.#inhibitUntil = this.#clock.now() + delay;
    this.#timer = this.#clock.setTimeout(() => this.#inhibitExpired(duration), delay);
    this.#inhibitMs = Math.min(inhibitMaxMs, duration * 2);
    this.#move('down', reason, duration);
  }

  #inhibitExpired(duration: number): void {
    this.#timer = undefined;
    this.#inhibitUntil = undefined;
    this.#warmUpCount = this.#config.upNoticeNum;
    this.#move('up-warm', `inhibited for ${formatDuration(duration)}; re-admitted to warm up`);
  }

  #move(to: DestCheckState, reason: string, inhibitMs?: number): void {
    const from = this.#state;
    this.#state = to;
    this.#onChange({ from, to, reason, ...(inhibitMs !== undefined ? { inhibitMs } : {}) });
  }

  #cancel(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}
