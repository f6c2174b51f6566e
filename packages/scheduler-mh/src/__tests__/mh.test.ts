import { ConfigError, PlanExecutor, planHash, type ConnectionTuple, type HashPlan } from '@fulcrum/kernel';
import { describe, expect, it } from 'vitest';
import mhDefault, { maglevTable, mh } from '../index.js';
import { compilePlan, instantiate, makeView, validOptions } from '@fulcrum/testkit';

const tuple = (sourceAddress: string, sourcePort = 40000): ConnectionTuple => ({
  sourceAddress,
  sourcePort,
  destinationAddress: '192.0.2.1',
  destinationPort: 80,
});

describe('mh plugin', () => {
  it('is the default export and fills its options from the schema', () => {
    expect(mhDefault).toBe(mh);
    expect(mh).toMatchObject({ kind: 'scheduler', name: 'mh', kernel: '^0.1.0' });
    expect(validOptions(mh)).toEqual({ tableSize: 65537, fields: ['source-address'], fallback: true });
    expect(() => validOptions(mh, { fields: [] })).toThrow(/minItems/);
    expect(() => validOptions(mh, { fields: ['source-mac'] })).toThrow(/enum/);
    expect(() => validOptions(mh, { tableSize: 5 })).toThrow(/minimum/);
  });

  it('refuses a table size that is not a prime with a config error at the option', () => {
    try {
      instantiate(mh, { tableSize: 65536 });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).issues[0]!.path).toBe('services[0].scheduler.options.tableSize');
      expect((e as ConfigError).message).toMatch(/prime/);
    }
  });

  it('compiles a hash plan whose table is the Maglev table of the view', () => {
    const view = makeView([1, 2, 0, 3]);
    const plan = compilePlan(mh, view, {
      tableSize: 251,
      fields: ['source-address', 'source-port'],
    }) as HashPlan;
    expect(plan.kind).toBe('hash');
    expect(plan.fields).toEqual(['source-address', 'source-port']);
    expect(plan.table).toEqual(maglevTable(view.realServers, { tableSize: 251 }));
  });

  it('sends a client to the server of its slot, and keeps it there while membership is stable', () => {
    const view = makeView([1, 1, 1, 1, 1]);
    const plan = compilePlan(mh, view) as HashPlan;
    const executor = new PlanExecutor(plan);
    // Same client, another port, another compilation of the same view: same server.
    const again = new PlanExecutor(compilePlan(mh, view) as HashPlan);
    for (let i = 0; i < 200; i++) {
      const t = tuple(`203.0.113.${i}`, 1024 + i);
      const s = executor.pick(t);
      expect(s).toBe(plan.table[planHash(['source-address'], t) % plan.table.length]);
      expect(again.pick(tuple(`203.0.113.${i}`, 50000))).toBe(s);
    }
  });

  it('compiles a service without a server of weight > 0 to an empty table that schedules nothing', () => {
    for (const servers of [[], [0, 0], [{ weight: 0, configuredWeight: 3 }]]) {
      const plan = compilePlan(mh, makeView(servers)) as HashPlan;
      expect(plan.table).toEqual([]);
      expect(new PlanExecutor(plan).pick(tuple('203.0.113.1'))).toBe(-1);
    }
  });
});
