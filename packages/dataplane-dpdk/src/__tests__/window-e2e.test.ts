// The TCP window check end to end: real Linux TCP stacks (iperf3 bulk both ways, window
// scaling, SACK and timestamps as they negotiate them) cross the EAL dataplane with no
// segment taken for out of window, and segments forged from the client's namespace on a
// live connection's 4-tuple, outside its window, are dropped and counted while the
// connection carries on.
import { requires } from '@fulcrum/testkit';
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { dataplaneYaml, distReason, startChild, teardown, type Dataplane } from './e2e.js';
import { Topology } from './netns.js';

const need = requires({
  root: true,
  commands: ['ip', 'ethtool', 'iperf3', 'hping3', 'tshark'],
  check: () => nativeUnavailableReason() ?? distReason(),
});

describe.skipIf(need.skip)(`TCP window check through the EAL dataplane${need.note}`, () => {
  const t = new Topology();
  const spawned: ChildProcess[] = [];
  const prefix = `fulcrum-${t.id}-window`;
  let dp: Dataplane | undefined;

  const run = (ns: string, cmd: string[], stdin: 'ignore' | 'pipe' = 'ignore') => {
    const c = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: [stdin, 'pipe', 'pipe'] });
    spawned.push(c);
    let out = '';
    c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const done = new Promise<{ code: number | null; out: string }>((r) =>
      c.once('exit', (code) => r({ code, out })),
    );
    return { c, done, out: () => out };
  };
  const until = async (what: () => boolean, label: string, ms = 5000) => {
    for (const end = Date.now() + ms; !what();) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const metric = async (re: RegExp) => {
    dp!.send('counters');
    const { metrics } = JSON.parse(await dp!.next('counters')) as { metrics: string };
    return Number(re.exec(metrics)?.[1] ?? 0);
  };
  const drops = () => metric(/fulcrum_dpdk_drops_total\{reason="out_of_window"\} (\d+)/);

  // tshark capturing live on `iface` in `ns`, one row of `names` per packet.
  const fields = (ns: string, iface: string, filter: string, names: string[]) => {
    const p = run(ns, [
      'tshark',
      '-n',
      '-l',
      '-i',
      iface,
      '-f',
      filter,
      '-T',
      'fields',
      ...names.flatMap((n) => ['-e', n]),
    ]);
    const rows = () =>
      p
        .out()
        .split('\n')
        .map((l) => l.trim().split('\t'))
        .filter((f) => f.length === names.length);
    return { ...p, rows };
  };

  // Three services: web (the Topology's HTTP server), and iperf3 plain and behind SYNPROXY
  // with every SYN-ACK option on (window scaling, timestamps translated, SACK).
  const yaml = () => `${dataplaneYaml(t, {
    prefix,
    options: `
    synproxy: { synackOptions: { wscale: 7, timestamp: true, sack: true } }`,
  })}
services:
  - name: web
    protocol: tcp
    listen: 10.1.0.100:80
    scheduler: rr
    localAddresses: [10.2.0.200]
    realServers:
      - { address: '10.2.0.11:8080', weight: 1 }
  - name: bulk
    protocol: tcp
    listen: 10.1.0.100:5201
    scheduler: rr
    localAddresses: [10.2.0.201]
    realServers:
      - { address: '10.2.0.11:5201', weight: 1 }
  - name: guarded-bulk
    protocol: tcp
    listen: 10.1.0.100:5202
    scheduler: rr
    synproxy: true
    localAddresses: [10.2.0.202]
    realServers:
      - { address: '10.2.0.11:5201', weight: 1 }
`;

  beforeAll(async () => {
    t.setup();
    await t.startServer();
    const iperf = run(t.srv, ['iperf3', '-s', '-B', '10.2.0.11', '-p', '5201', '--forceflush']);
    await until(() => /Server listening/.test(iperf.out()), 'iperf3 -s');
    dp = startChild(t, yaml());
    await dp.next('ready');
  }, 30_000);
  afterAll(() => teardown(t, prefix, [...spawned, dp?.child]));

  it(
    'carries iperf3 bulk transfers both ways, plain and through SYNPROXY, with no segment counted out of window',
    { timeout: 60_000 },
    async () => {
      for (const [port, reverse] of [
        ['5201', []],
        ['5201', ['-R']],
        ['5202', []],
        ['5202', ['-R']],
      ] as const) {
        const r = await run(t.cli, [
          'iperf3',
          '-c',
          '10.1.0.100',
          '-p',
          port,
          '-t',
          '2',
          '-P',
          '4',
          '-J',
          ...reverse,
        ]).done;
        expect(r.code, r.out).toBe(0);
        const report = JSON.parse(r.out.slice(r.out.indexOf('{'), r.out.lastIndexOf('}') + 1)) as {
          end: { sum_received: { bytes: number } };
        };
        expect(report.end.sum_received.bytes, `${port} ${reverse.join('')}`).toBeGreaterThan(10_000_000);
      }
      expect(await drops()).toBe(0);
      // Each SYNPROXY run opened its control and four data connections with cookies.
      expect(await metric(/fulcrum_dpdk_synproxy_total\{event="ack_valid"\} (\d+)/)).toBeGreaterThanOrEqual(
        10,
      );
    },
  );

  it(
    'drops and counts forged out-of-window segments on a live connection, which carries on',
    { timeout: 60_000 },
    async () => {
      const before = await drops();
      const cport = 47_000 + (process.pid % 1000);
      // The client's own segments as they leave its namespace: their raw sequence numbers.
      const cap = fields(t.cli, t.wanPeer, `tcp src port ${cport}`, [
        'tcp.seq_raw',
        'tcp.ack_raw',
        'tcp.len',
      ]);
      // And what reaches the server from the balancer's local address for this service.
      const seen = fields(t.srv, t.lanPeer, 'tcp dst port 8080 and src host 10.2.0.200', [
        'tcp.seq_raw',
        'tcp.ack_raw',
        'tcp.flags.reset',
      ]);
      await until(() => /Capturing on/.test(cap.out()) && /Capturing on/.test(seen.out()), 'tshark');
      await new Promise((r) => setTimeout(r, 500));
      // One keep-alive connection from a known port: a request, a pause while we forge, another.
      const client = run(
        t.cli,
        [
          process.execPath,
          '-e',
          `const http = require('http');
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
        const get = (tag) => http.get({ host: '10.1.0.100', port: 80, agent, localPort: ${cport} }, (res) => {
          let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => { console.log(tag, b); if (tag === 'second') process.exit(0); });
        }).on('error', (e) => { console.log('error', e.code); process.exit(1); });
        get('first');
        require('readline').createInterface({ input: process.stdin }).once('line', () => get('second'));
        setTimeout(() => process.exit(2), 20000).unref();`,
        ],
        'pipe',
      );
      await until(() => /first /.test(client.out()), 'the first response');
      // SYN, ACK, the request, the ACK of the response (later lines: keepalive probes).
      const segments = () =>
        cap.rows().map(([q, a, l]) => ({ seq: Number(q), ack: Number(a), len: Number(l) }));
      await until(() => segments().length >= 4, 'the client segments in the capture');
      const request = segments().find((g) => g.len > 0)!;
      const next = (request.seq + request.len) >>> 0;
      const acked = segments()[3]!.ack;
      const far = (n: number) => ((n + 2 ** 31) >>> 0).toString();
      const forge = (flags: string[], seq: string, ack: string) =>
        run(t.cli, [
          'hping3',
          '-q',
          '-c',
          '1',
          '-k',
          '-s',
          String(cport),
          '-p',
          '80',
          ...flags,
          '-M',
          seq,
          '-L',
          ack,
          '10.1.0.100',
        ]).done;
      // Data half the sequence space away; an ACK of data the server never sent; a RST that
      // would end the connection if it got through.
      await forge(['-A', '-d', '20'], far(next), String(acked));
      await forge(['-A'], String(next), far(acked));
      await forge(['-R'], far(next), '0');
      client.c.stdin!.write('go\n');
      const r = await client.done;
      expect(r.out, r.out).toMatch(/second \{"remote":"10\.2\.0\.200"/);
      expect(r.code).toBe(0);
      expect((await drops()) - before).toBe(3);
      // None of the three reached the server: the capture holds only the real segments.
      await new Promise((r) => setTimeout(r, 1000));
      cap.c.kill('SIGTERM');
      seen.c.kill('SIGTERM');
      const atServer = seen.rows();
      expect(atServer.length, seen.out()).toBeGreaterThanOrEqual(6); // handshake, both requests, ACKs
      for (const [seq, ack, reset] of atServer) {
        expect(seq).not.toBe(far(next));
        expect(ack).not.toBe(far(acked));
        expect(reset).not.toMatch(/1|True/);
      }
    },
  );

  it(
    'answers a live client connection the balancer no longer holds (it restarted) with a RST at once',
    { timeout: 60_000 },
    async () => {
      // A keep-alive connection, then a new dataplane process with an empty table: the
      // client's next request draws a RST (ECONNRESET in well under a second) instead of
      // retransmitting into silence, as LVS's director answers through its own stack.
      const client = run(
        t.cli,
        [
          process.execPath,
          '-e',
          `const s = require('net').connect({ host: '10.1.0.100', port: 80 }, () => s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'));
          s.once('data', () => console.log('first'));
          require('readline').createInterface({ input: process.stdin }).once('line', () => {
            const t0 = Date.now();
            s.on('error', (e) => { console.log(e.code, Date.now() - t0); process.exit(0); });
            s.on('data', () => { console.log('answered'); process.exit(1); });
            s.write('GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n');
          });
          setTimeout(() => { console.log('silence'); process.exit(2); }, 15000).unref();`,
        ],
        'pipe',
      );
      await until(() => /first/.test(client.out()), 'the first response');
      dp!.child.kill('SIGKILL');
      await dp!.exited;
      dp = startChild(t, yaml());
      await dp.next('ready');
      client.c.stdin!.write('go\n');
      const r = await client.done;
      const [code, ms] = r.out.trim().split('\n').at(-1)!.split(' ');
      expect(code, r.out).toBe('ECONNRESET');
      expect(Number(ms), r.out).toBeLessThan(1000);
      dp.send('counters');
      const { metrics } = JSON.parse(await dp.next('counters')) as { metrics: string };
      expect(metrics).toMatch(/fulcrum_dpdk_drops_total\{reason="no_conn"\} [1-9]/);
    },
  );
});
