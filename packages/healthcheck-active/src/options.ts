import { durationSchema, type JsonSchema } from '@fulcrum/kernel';

/** The options every active checker takes, after the kernel's validation (durations in ms). */
export interface ActiveOptions {
  /** Time between the end of one check and the start of the next (keepalived `delay_loop`). */
  interval: number;
  /** Budget of one attempt, connect and answer (keepalived `connect_timeout`). */
  timeout: number;
  /** Further attempts before a check counts as failed (keepalived `retry`). */
  retries: number;
  /** Pause before each further attempt (keepalived `delay_before_retry`). */
  retryDelay: number;
  /** Consecutive passed checks that bring a down server up (HAProxy `rise`). */
  rise: number;
  /** Consecutive failed checks that take an up server down (HAProxy `fall`). */
  fall: number;
  /** The state before the first check completes; `down` is keepalived's `alpha`. */
  initialState: 'up' | 'down';
  /** The first check starts after a random delay in [0, warmup); default one interval. */
  warmup?: number;
  /** Probe this address instead of the real server's (keepalived `connect_ip`). */
  address?: string;
  /** Probe this port instead of the real server's (keepalived `connect_port`). */
  port?: number;
  /** Source address of the probes (keepalived `bindto`). */
  bindTo?: string;
}

/** Schema properties of ActiveOptions, to spread into a checker's own optionsSchema. */
export const activeOptionsProperties: Record<string, JsonSchema> = {
  interval: durationSchema({ default: '5s', min: '10ms', max: '1d', description: 'keepalived delay_loop' }),
  timeout: durationSchema({
    default: '2s',
    min: '1ms',
    max: '1h',
    description: 'keepalived connect_timeout',
  }),
  retries: { type: 'integer', minimum: 0, maximum: 100, default: 0, description: 'keepalived retry' },
  retryDelay: durationSchema({ default: '1s', max: '1h', description: 'keepalived delay_before_retry' }),
  rise: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
  fall: { type: 'integer', minimum: 1, maximum: 1000, default: 1 },
  initialState: { enum: ['up', 'down'], default: 'up', description: 'down is keepalived alpha' },
  warmup: durationSchema({ max: '1d', description: 'random delay before the first check' }),
  address: { type: 'string', format: 'ip', description: 'keepalived connect_ip' },
  port: { type: 'integer', minimum: 1, maximum: 65535, description: 'keepalived connect_port' },
  bindTo: { type: 'string', format: 'ip', description: 'keepalived bindto' },
};
