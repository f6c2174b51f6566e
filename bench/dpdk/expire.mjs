// How long `expire` (a server retired with onFailure: remove) stops a dpdk worker (issue 8):
// the worker resets the server's connections by walking its connection table, and while a
// chunk of that walk runs it forwards nothing. On a table of a million slots, the longest
// single chunk with the walk chunked as the workers run it (as much as 65,536 empty slots per
// loop iteration) against the whole table in one go (the walk before it was chunked),
// measured in native code (the harness's walk, RSTs built and routed, then discarded).
// Runs against the built packages: `npm run build && node bench/dpdk/expire.mjs`.
//   --quick   100,000 slots instead of 1,000,000
// Each case runs in a child process of its own (a fresh table). Writes
// bench/results/dpdk-expire-<time>.json (and dpdk-expire-latest.json).
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  benchHarness,
  BENCH_MACS,
  loadDpdk,
  tcpService,
  upServers,
  tcpFrame,
  SYN,
  ACK,
} from '../lib/frames.mjs';

const quick = process.argv.includes('--quick');
const SLOTS = quick ? 100_000 : 1_000_000;
const REPS = 3; // each case this many times: the machine is shared, the best run is reported

// The cases: how full the table is and how much of it belongs to the expired server.
const CASES = [
  { name: 'nearly empty', conns: 1024, servers: 8, note: '1,024 connections, 1 server of 8 expired' },
  { name: 'full, 1 of 8', conns: SLOTS, servers: 8, note: 'every slot used, 1 server of 8 expired' },
  { name: 'full, all', conns: SLOTS, servers: 1, note: 'every slot used, its only server expired' },
];
const MODES = {
  chunked: null, // the workers' defaults
  whole: { slots: SLOTS, connCost: 0, resetCost: 0 }, // the whole table in one chunk
};

if (process.argv[2] === '--child') {
  const [, , , caseIndex, mode] = process.argv;
  console.log(JSON.stringify(await child(CASES[Number(caseIndex)], MODES[mode])));
  process.exit(0);
}

async function child(c, chunk) {
  const dpdk = await loadDpdk();
  const servers = Array.from({ length: c.servers }, (_, i) => `10.2.0.${11 + i}`);
  const laddrs = Array.from({ length: Math.ceil(SLOTS / 60_000) + 1 }, (_, i) => `10.2.1.${i + 1}`);
  const h = benchHarness(dpdk, servers, { maxConnections: SLOTS, ...(chunk ? { expireChunk: chunk } : {}) });
  const realServers = upServers(servers, 8080);
  const service = tcpService({ realServers, localAddresses: laddrs });
  h.apply({ added: [service], updated: [], removed: [] });
  // Each client opens (SYN) and acknowledges (ACK, no SYN-ACK needed: IPVS's table takes it
  // to ESTABLISHED), so each connection gets a RST toward each side.
  const clientOf = (i) => ({ ip: `198.18.${(i >> 16) & 0xff}.${i & 255}`, port: 1024 + ((i >> 8) & 0xff) });
  const BATCH = 50_000;
  for (let done = 0; done < c.conns; done += BATCH) {
    const frames = [];
    for (let i = done; i < Math.min(done + BATCH, c.conns); i++) {
      const cl = clientOf(i);
      const f = {
        srcMac: BENCH_MACS.client,
        dstMac: BENCH_MACS.wan,
        src: cl.ip,
        dst: '10.1.0.100',
        sport: cl.port,
        dport: 80,
      };
      frames.push({ port: 'wan', frame: tcpFrame({ ...f, flags: SYN, seq: 1 }) });
      frames.push({ port: 'wan', frame: tcpFrame({ ...f, flags: ACK, seq: 2, ack: 5001 }) });
    }
    h.bench(frames, 1);
  }
  const filled = h.counters().connections;
  if (filled !== c.conns) throw new Error(`table holds ${filled} connections, not ${c.conns}`);
  // The snapshot that takes server 0 out (weight 0, out of the plan), then its expire.
  const out = upServers(servers, 8080).map((r, i) => (i === 0 ? { ...r, weight: 0, health: 'down' } : r));
  h.apply({
    added: [],
    updated: [
      {
        ...service,
        realServers: out,
        plan: { kind: 'sequence', sequence: out.flatMap((r, i) => (r.weight > 0 ? [i] : [])) },
        quorum: { up: true, liveWeight: c.servers - 1, required: 1 },
        version: 2,
      },
    ],
    removed: [],
  });
  const ns = h.benchExpireWalk('web', `${servers[0]}:8080`);
  const counters = h.counters();
  const sorted = [...ns].sort((a, b) => a - b);
  return {
    chunks: ns.length,
    longestMs: sorted[sorted.length - 1] / 1e6,
    medianMs: sorted[sorted.length >> 1] / 1e6,
    totalMs: ns.reduce((a, b) => a + b, 0) / 1e6,
    reset: counters.conns_reset,
    rstSent: counters.rst_sent,
    left: counters.connections,
  };
}

const script = fileURLToPath(import.meta.url);
const run = (caseIndex, mode) => {
  const r = spawnSync(
    process.execPath,
    [script, '--child', String(caseIndex), mode, ...(quick ? ['--quick'] : [])],
    {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  if (r.status !== 0) throw new Error(`case ${CASES[caseIndex].name} (${mode}) failed`);
  return JSON.parse(r.stdout.trim().split('\n').pop());
};

const results = {
  date: new Date().toISOString(),
  cpu: cpus()[0]?.model,
  slots: SLOTS,
  cases: [],
};
console.log(
  `dpdk expire: the longest time one worker forwards nothing while it resets an expired server's connections; a ${SLOTS.toLocaleString()}-slot table (${results.cpu}); best of ${REPS}`,
);
CASES.forEach((c, i) => {
  const row = { name: c.name, note: c.note };
  for (const mode of Object.keys(MODES)) {
    const runs = Array.from({ length: REPS }, () => run(i, mode));
    const best = runs.reduce((a, b) => (b.longestMs < a.longestMs ? b : a));
    if (best.left !== c.conns - Math.ceil(c.conns / c.servers))
      throw new Error(`${c.name} (${mode}): ${best.left} connections left`);
    row[mode] = best;
  }
  row.ratio = row.whole.longestMs / row.chunked.longestMs;
  results.cases.push(row);
  const f = (r) =>
    r.chunks > 1
      ? `${r.longestMs.toFixed(2)} ms (median ${r.medianMs.toFixed(2)} ms of ${r.chunks} chunks, ${r.totalMs.toFixed(1)} ms in all)`
      : `${r.longestMs.toFixed(2)} ms (1 chunk)`;
  console.log(
    `  ${c.note}: ${row.whole.reset.toLocaleString()} reset, ${row.whole.rstSent.toLocaleString()} RSTs`,
  );
  console.log(`    whole table at once   ${f(row.whole)}`);
  console.log(`    chunked               ${f(row.chunked)}   longest stall ÷ ${row.ratio.toFixed(1)}`);
});

const dir = join(new URL('../results', import.meta.url).pathname);
mkdirSync(dir, { recursive: true });
const stamp = results.date.replace(/[:.]/g, '-');
writeFileSync(join(dir, `dpdk-expire-${stamp}.json`), JSON.stringify(results, null, 2) + '\n');
writeFileSync(join(dir, 'dpdk-expire-latest.json'), JSON.stringify(results, null, 2) + '\n');
