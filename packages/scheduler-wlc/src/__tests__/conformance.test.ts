import { PlanSimulator, schedulerCases, standardViews, testContext, validOptions } from '@fulcrum/testkit';
import { describe, expect, it } from 'vitest';
import wlc from '../index.js';

// The suite's reachability check picks with zero loads; a least-connections plan then always
// picks its first server, so on views with two or more servers of weight > 0 that check
// cannot pass for any lc/wlc/sed/nq plan. Those cases are declared as expected failures
// (it.fails: they turn red once @fulcrum/testkit picks with live loads), and the same check
// runs below with live loads kept by the testkit's PlanSimulator.
const reach = 'never picks a weight-0 server and reaches every other one, for ';
const loadBlind = new Set(
  standardViews()
    .filter(([, view]) => view.realServers.filter((s) => s.weight > 0).length > 1)
    .map(([label]) => reach + label),
);

describe('wlc passes the @fulcrum/testkit scheduler conformance suite', () => {
  for (const c of schedulerCases(wlc)) {
    if (loadBlind.has(c.name))
      it.fails(`${c.name} [expected failure: the suite picks with zero loads]`, c.run);
    else it(c.name, c.run);
  }

  for (const [label, view] of standardViews()) {
    it(`${reach}${label}, with live loads (connections stay open)`, () => {
      const plan = wlc.create(testContext(wlc), validOptions(wlc) as never).compile(view);
      const sim = new PlanSimulator(plan);
      const seen = new Set<number>();
      // sed/nq reach a weight-1 server only once every heavier one holds about weight − 1
      // connections: Σ weight picks reach every server.
      const picks = 2000 + view.realServers.reduce((sum, s) => sum + s.weight, 0);
      for (let i = 0; i < picks; i++) {
        const conn = sim.connect();
        if (!conn) continue;
        expect(view.realServers[conn.server]!.weight, `picked server ${conn.server}`).toBeGreaterThan(0);
        seen.add(conn.server);
      }
      const live = view.realServers.filter((s) => s.weight > 0).map((s) => s.index);
      expect([...seen].sort((a, b) => a - b)).toEqual(live);
    });
  }
});
