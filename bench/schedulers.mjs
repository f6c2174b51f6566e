// Scheduler benchmarks (issue 5): compile time, balance, disruption and cost per pick.
// Runs against the built packages (dist/): `npm run build && node bench/schedulers.mjs`.
// Prints tables and writes bench/results/schedulers-<time>.json (and schedulers-latest.json).
//   --quick   fewer connections and runs, for a smoke test of the script itself
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

let kernel, testkit;
const plugins = {};
try {
  kernel = await import('@fulcrum/kernel');
  testkit = await import('@fulcrum/testkit');
  for (const name of ['rr', 'wrr', 'lc', 'wlc', 'sed', 'nq', 'sh', 'mh']) {
    plugins[name] = (await import(`@fulcrum/scheduler-${name}`)).default;
  }
} catch (e) {
  console.error(`cannot load the built packages (${e.message}); run \`npm run build\` first`);
  process.exit(1);
}
const { PlanExecutor, planHash } = kernel;
const { instantiate, makeView: view, prng } = testkit;
const instance = (name, options = {}) => instantiate(plugins[name], options);

const quick = process.argv.includes('--quick');
const CONNECTIONS = quick ? 100_000 : 1_000_000;
const COMPILE_RUNS = quick ? 10 : 50;

// ---- helpers --------------------------------------------------------------------------

function clientTuples(count, seed) {
  const rand = prng(seed);
  const tuples = new Array(count);
  for (let i = 0; i < count; i++) {
    const a = Math.floor(rand() * 2 ** 32);
    tuples[i] = {
      sourceAddress: `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`,
      sourcePort: 1024 + Math.floor(rand() * 64000),
      destinationAddress: '198.51.100.1',
      destinationPort: 80,
    };
  }
  return tuples;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const percentile = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const fmt = (x, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : String(x));
const pct = (x, digits = 2) => `${(x * 100).toFixed(digits)}%`;

function table(title, header, rows) {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, c) => Math.max(...cells.map((r) => r[c].length)));
  console.log(`\n${title}`);
  cells.forEach((r, i) => {
    console.log(r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  });
}

// ---- 1. compile time, 1,000 servers --------------------------------------------------------

function compileTime() {
  const rand = prng(1);
  const weights = Array.from({ length: 1000 }, () => 1 + Math.floor(rand() * 100));
  const v = view(weights);
  const results = [];
  const heavy = Array.from({ length: 1000 }, () => 1 + Math.floor(rand() * 65535));
  const cases = [
    ...Object.keys(plugins).map((name) => ({
      name,
      label: name,
      options: name === 'mh' ? { tableSize: 65537 } : {},
      v,
    })),
    { name: 'wrr', label: 'wrr, weights 1..65535 (scaled)', options: {}, v: view(heavy) },
    { name: 'mh', label: 'mh, M = 655373', options: { tableSize: 655373 }, v },
  ];
  for (const { name, label, options, v } of cases) {
    const inst = instance(name, options);
    for (let i = 0; i < 5; i++) inst.compile(v); // warm up
    const times = [];
    let plan;
    for (let i = 0; i < COMPILE_RUNS; i++) {
      const t = performance.now();
      plan = inst.compile(v);
      times.push(performance.now() - t);
    }
    const entries = plan.sequence?.length ?? plan.table?.length ?? plan.weights.length;
    results.push({
      scheduler: label,
      servers: 1000,
      options,
      planKind: plan.kind,
      planEntries: entries,
      medianMs: median(times),
      p95Ms: percentile(times, 0.95),
      maxMs: Math.max(...times),
    });
  }
  table(
    `Compile time, 1,000 servers with weights 1..100 (median of ${COMPILE_RUNS} runs after warm-up)`,
    ['scheduler', 'plan', 'entries', 'median ms', 'p95 ms', 'max ms'],
    results.map((r) => [r.scheduler, r.planKind, r.planEntries, fmt(r.medianMs), fmt(r.p95Ms), fmt(r.maxMs)]),
  );
  return results;
}

// ---- 2. balance ----------------------------------------------------------------------------

/** Least-connections: `concurrency` connections stay open; each new one replaces a random one. */
function simulateLeast(plan, n, count, concurrency, seed) {
  const rand = prng(seed);
  const loads = Array.from({ length: n }, () => ({ active: 0, inactive: 0 }));
  const load = (i) => loads[i];
  const executor = new PlanExecutor(plan);
  const open = [];
  const picks = new Array(n).fill(0);
  const tuple = {
    sourceAddress: '203.0.113.1',
    sourcePort: 1024,
    destinationAddress: '198.51.100.1',
    destinationPort: 80,
  };
  for (let c = 0; c < count; c++) {
    if (open.length >= concurrency) {
      const k = Math.floor(rand() * open.length);
      loads[open[k]].active--;
      open[k] = open[open.length - 1];
      open.pop();
    }
    const s = executor.pick(tuple, load);
    loads[s].active++;
    open.push(s);
    picks[s]++;
  }
  return picks;
}

function balance(tuples) {
  const sets = [
    { label: 'N=10, weights 1,2,3,5,8,13,21,34,55,89', weights: [1, 2, 3, 5, 8, 13, 21, 34, 55, 89] },
    {
      label: 'N=100, weights 1..100 (random)',
      weights: (() => {
        const rand = prng(2);
        return Array.from({ length: 100 }, () => 1 + Math.floor(rand() * 100));
      })(),
    },
  ];
  const results = [];
  for (const { label, weights } of sets) {
    const n = weights.length;
    const total = weights.reduce((a, b) => a + b, 0);
    const v = view(weights);
    for (const name of Object.keys(plugins)) {
      const plan = instance(name).compile(v);
      const ignoresWeights = name === 'rr' || name === 'lc';
      const expected = weights.map((w) => (ignoresWeights ? 1 / n : w / total));
      let picks;
      let concurrency;
      if (plan.kind === 'least-connections') {
        concurrency = 4 * total;
        picks = simulateLeast(plan, n, CONNECTIONS, concurrency, 3);
      } else {
        const executor = new PlanExecutor(plan);
        picks = new Array(n).fill(0);
        for (let i = 0; i < CONNECTIONS; i++) picks[executor.pick(tuples[i])]++;
      }
      const errors = picks.map((p, i) => Math.abs(p / CONNECTIONS / expected[i] - 1));
      const worst = errors.indexOf(Math.max(...errors));
      let tableError;
      if (plan.kind === 'hash') {
        const slots = new Array(n).fill(0);
        for (const s of plan.table) slots[s]++;
        tableError = Math.max(...slots.map((c, i) => Math.abs(c / plan.table.length / expected[i] - 1)));
      }
      results.push({
        set: label,
        scheduler: name,
        share: ignoresWeights ? 'equal' : 'weight',
        connections: CONNECTIONS,
        ...(concurrency ? { concurrentConnections: concurrency } : {}),
        maxRelativeError: errors[worst],
        worstServer: {
          index: worst,
          weight: weights[worst],
          expectedShare: expected[worst],
          share: picks[worst] / CONNECTIONS,
        },
        ...(tableError !== undefined ? { tableMaxRelativeError: tableError } : {}),
      });
    }
  }
  table(
    `Balance: ${CONNECTIONS.toLocaleString('en')} connections, share against weight (rr and lc: against an equal share); ` +
      'hash plans: random client addresses; least-connections: 4 × Σweight connections open, each new one replacing a random one',
    ['servers', 'scheduler', 'max rel. error', 'worst server (weight: share / expected)', 'table error'],
    results.map((r) => [
      r.set.split(',')[0],
      r.scheduler,
      pct(r.maxRelativeError),
      `w=${r.worstServer.weight}: ${pct(r.worstServer.share, 3)} / ${pct(r.worstServer.expectedShare, 3)}`,
      r.tableMaxRelativeError === undefined ? '' : pct(r.tableMaxRelativeError),
    ]),
  );
  return results;
}

// ---- 3. disruption (mh, sh) ----------------------------------------------------------------

function disruption(tuples) {
  const fields = ['source-address'];
  const hashes = tuples.map((t) => planHash(fields, t));
  const movedFraction = (before, vBefore, after, vAfter) => {
    let moved = 0;
    for (const h of hashes) {
      const a = vBefore.realServers[before.table[h % before.table.length]].key;
      const b = vAfter.realServers[after.table[h % after.table.length]].key;
      if (a !== b) moved++;
    }
    return moved / hashes.length;
  };
  const results = [];
  const cases = [
    { name: 'mh', label: 'mh', options: {}, sizes: [10, 100, 1000] },
    { name: 'mh', label: 'mh, M = 655373', options: { tableSize: 655373 }, sizes: [100, 1000] },
    { name: 'sh', label: 'sh', options: {}, sizes: [10, 100, 1000] },
  ];
  for (const { name, label, options, sizes } of cases) {
    const inst = instance(name, options);
    for (const n of sizes) {
      const base = view(new Array(n).fill(1));
      const before = inst.compile(base);
      const gone = [0, Math.floor(n / 3), Math.floor(n / 2), Math.floor((2 * n) / 3), n - 1];
      const removed = gone.map((g) => {
        const v = view(base.realServers.filter((_, i) => i !== g).map((s) => ({ weight: 1, key: s.key })));
        return movedFraction(before, base, inst.compile(v), v);
      });
      const added = [0, 1, 2, 3, 4].map((k) => {
        const v = view([
          ...base.realServers.map((s) => ({ weight: 1, key: s.key })),
          { weight: 1, key: `10.200.0.${k}:80` },
        ]);
        return movedFraction(before, base, inst.compile(v), v);
      });
      const inhibited = gone.map((g) => {
        const v = view(
          base.realServers.map((s, i) => ({ weight: i === g ? 0 : 1, configuredWeight: 1, key: s.key })),
        );
        return movedFraction(before, base, inst.compile(v), v);
      });
      const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
      results.push({
        scheduler: label,
        options,
        servers: n,
        removeOne: mean(removed),
        addOne: mean(added),
        inhibitOne: mean(inhibited),
        idealRemove: 1 / n,
        idealAdd: 1 / (n + 1),
      });
    }
  }
  table(
    `Disruption: fraction of ${hashes.length.toLocaleString('en')} client addresses whose server changes (mean of 5 cases; equal weights; ideal 1/N)`,
    [
      'scheduler',
      'N',
      'remove one',
      '× ideal',
      'add one',
      '× ideal',
      'one at weight 0 (fallback)',
      '× ideal',
    ],
    results.map((r) => [
      r.scheduler,
      r.servers,
      pct(r.removeOne, 3),
      fmt(r.removeOne / r.idealRemove),
      pct(r.addOne, 3),
      fmt(r.addOne / r.idealAdd),
      pct(r.inhibitOne, 3),
      fmt(r.inhibitOne / r.idealRemove),
    ]),
  );
  return results;
}

// ---- 4. cost per pick ----------------------------------------------------------------------

function perPick(tuples) {
  const cases = [];
  const rand = prng(4);
  const weights = (n) => Array.from({ length: n }, () => 1 + Math.floor(rand() * 100));
  cases.push({
    label: 'sequence (wrr, 1,000 servers)',
    plan: instance('wrr').compile(view(weights(1000))),
    picks: CONNECTIONS,
  });
  cases.push({
    label: 'hash (mh, IPv4 source address)',
    plan: instance('mh').compile(view(weights(1000))),
    picks: CONNECTIONS,
  });
  const v6 = tuples
    .slice(0, 10_000)
    .map((t, i) => ({ ...t, sourceAddress: `2001:db8:${(i >> 8).toString(16)}::${(i & 255).toString(16)}` }));
  cases.push({
    label: 'hash (mh, IPv6 source address)',
    plan: instance('mh').compile(view(weights(1000))),
    picks: CONNECTIONS,
    tuples: v6,
  });
  cases.push({
    label: 'hash (sh, address + port)',
    plan: instance('sh', { fields: ['source-address', 'source-port'] }).compile(view(weights(1000))),
    picks: CONNECTIONS,
  });
  for (const n of [10, 100, 1000]) {
    cases.push({
      label: `least-connections (wlc, ${n} servers)`,
      plan: instance('wlc').compile(view(weights(n))),
      picks: Math.min(CONNECTIONS, 100_000_000 / n / 10),
    });
  }
  const results = [];
  for (const c of cases) {
    const executor = new PlanExecutor(c.plan);
    const list = c.tuples ?? tuples;
    const n = c.plan.weights?.length ?? 0;
    const loads = Array.from({ length: n }, (_, i) => ({ active: (i * 7) % 50, inactive: (i * 13) % 20 }));
    const load = (i) => loads[i];
    let sink = 0;
    for (let i = 0; i < 10_000; i++) sink += executor.pick(list[i % list.length], load); // warm up
    const t = process.hrtime.bigint();
    for (let i = 0; i < c.picks; i++) sink += executor.pick(list[i % list.length], load);
    const ns = Number(process.hrtime.bigint() - t) / c.picks;
    results.push({ plan: c.label, picks: c.picks, nsPerPick: ns, sink });
  }
  table(
    'PlanExecutor (the socket dataplane executor): cost per pick',
    ['plan', 'picks', 'ns/pick'],
    results.map((r) => [r.plan, r.picks.toLocaleString('en'), fmt(r.nsPerPick, 0)]),
  );
  return results.map(({ sink: _sink, ...r }) => r);
}

// ---- run ----------------------------------------------------------------------------------

const started = new Date();
console.log(
  `Fulcrum scheduler benchmarks — node ${process.version}, ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}${quick ? ' (--quick)' : ''}`,
);
const tuples = clientTuples(CONNECTIONS, 5);
const results = {
  date: started.toISOString(),
  node: process.version,
  cpu: `${cpus()[0]?.model ?? 'unknown'} × ${cpus().length}`,
  quick,
  compile: compileTime(),
  balance: balance(tuples),
  disruption: disruption(tuples),
  perPick: perPick(tuples),
};
const dir = join(new URL('.', import.meta.url).pathname, 'results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `schedulers-${started.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, 'schedulers-latest.json'), JSON.stringify(results, null, 2) + '\n');
console.log(`\nwrote ${file}`);
