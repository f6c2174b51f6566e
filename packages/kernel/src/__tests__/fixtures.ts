import {
  defineDataplane,
  defineHealthCheck,
  definePassthrough,
  defineScheduler,
  type DataplaneChange,
  type HealthVerdict,
} from '../index.js';

const noOptions = { type: 'object', additionalProperties: false, properties: {} };

/** rr over servers with weight > 0, compiled to a sequence plan. */
export const rr = defineScheduler({
  name: 'rr',
  kernel: '^0.1.0',
  optionsSchema: noOptions,
  create: () => ({
    compile: (view) => ({
      kind: 'sequence',
      sequence: view.realServers.filter((r) => r.weight > 0).map((r) => r.index),
    }),
  }),
});

/** A dataplane that records what it is given and fails on request. */
export function recordingDataplane(
  name = 'memory',
  capabilities = ['tcp', 'udp', 'persistence', 'proxy-protocol'],
) {
  const state = {
    started: 0,
    stopped: 0,
    changes: [] as DataplaneChange[],
    failNextApply: undefined as Error | undefined,
    failStart: undefined as Error | undefined,
    options: [] as unknown[],
  };
  const plugin = defineDataplane<{ idleTimeout: number }>({
    name,
    kernel: '^0.1.0',
    capabilities,
    optionsSchema: {
      type: 'object',
      additionalProperties: false,
      properties: { idleTimeout: { duration: { min: '1s' }, default: '90s' } },
    },
    create: (_ctx, options) => {
      state.options.push(options);
      return {
        async start() {
          if (state.failStart) throw state.failStart;
          state.started++;
        },
        async apply(change) {
          const fail = state.failNextApply;
          state.failNextApply = undefined;
          if (fail) throw fail;
          state.changes.push(change);
        },
        async stop() {
          state.stopped++;
        },
      };
    },
  });
  return { plugin, state };
}

/** A health check the test drives by hand: `report(server, verdict)`. */
export function manualHealthCheck(name = 'manual') {
  const reporters = new Map<string, (v: HealthVerdict) => void>();
  const state = { created: 0, closed: 0, watching: new Set<string>() };
  const plugin = defineHealthCheck({
    name,
    kernel: '^0.1.0',
    optionsSchema: {
      type: 'object',
      additionalProperties: false,
      properties: { interval: { duration: true, default: '2s' } },
    },
    create: () => {
      state.created++;
      return {
        watch(target, report) {
          reporters.set(target.server, report);
          state.watching.add(target.server);
          return { stop: () => void state.watching.delete(target.server) };
        },
        close: () => void state.closed++,
      };
    },
  });
  const report = (server: string, verdict: HealthVerdict) => {
    const r = reporters.get(server);
    if (!r) throw new Error(`no watch for ${server}`);
    r(verdict);
  };
  return { plugin, state, report };
}

export const toa = definePassthrough({
  name: 'toa',
  kernel: '^0.1.0',
  requires: ['toa'],
  optionsSchema: noOptions,
  create: () => ({ settings: {} }),
});

export const settle = () => new Promise((r) => setImmediate(r));
