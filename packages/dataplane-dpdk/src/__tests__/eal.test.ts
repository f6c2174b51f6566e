import type { ServiceStatus } from '@fulcrum/kernel';
import { requires } from '@fulcrum/testkit';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { dataplaneYaml, distReason, startChild, type Dataplane, type Pmd } from './e2e.js';
import { Topology } from './netns.js';

const need = requires({
  root: true,
  commands: ['ip', 'ethtool', 'curl', 'ping'],
  check: () => nativeUnavailableReason() ?? distReason(),
});

// EAL leaves /var/run/dpdk/<file-prefix>/ behind; each test removes the ones it made.
const prefixes: string[] = [];
// Every dataplane process started, killed by PID after the tests whatever happened.
const children: ChildProcess[] = [];

function startDataplane(
  t: Topology,
  name: string,
  wanIface = t.wan,
  pmd: Pmd = 'af_packet',
  moreServices = '',
  workers = 1,
  queues = workers,
  options = '',
  wanPort = '',
): Dataplane {
  const prefix = `fulcrum-${t.id}-${name}`;
  prefixes.push(prefix);
  // The issue's config shape, through the whole kernel: schema, capabilities, rr compiled.
  const yaml = `${dataplaneYaml(t, {
    prefix,
    pmd,
    workers,
    queues,
    wanIface,
    options: `${workers > 1 ? '\n    connectionEvents: true' : ''}${options}`,
    wanPort,
  })}
services:
  - name: web
    protocol: tcp
    listen: 10.1.0.100:80
    scheduler: rr
    localAddresses: [10.2.0.200]
    realServers:
      - { address: '10.2.0.11:8080', weight: 1 }
      - { address: '10.2.0.12:8080', weight: 1 }
  - name: dns
    protocol: udp
    listen: 10.1.0.100:53
    scheduler: rr
    localAddresses: [10.2.0.201]
    realServers:
      - { address: '10.2.0.11:5353', weight: 1 }
      - { address: '10.2.0.12:5353', weight: 1 }
${moreServices}`;
  const dp = startChild(t, yaml);
  children.push(dp.child);
  return dp;
}

async function timeToExit(
  dp: Dataplane,
  act: () => void,
): Promise<{ ms: number; code: number | null; signal: string | null }> {
  const t0 = Date.now();
  act();
  const timeout = setTimeout(() => dp.child.kill('SIGKILL'), 5000);
  const r = await dp.exited;
  clearTimeout(timeout);
  return { ms: Date.now() - t0, ...r };
}

describe.skipIf(need.skip)(
  `EAL with af_packet and af_xdp ports on veth pairs in namespaces${need.note}`,
  () => {
    const t = new Topology();
    beforeAll(async () => {
      t.setup();
      await t.startServer();
    });
    afterAll(() => {
      for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      t.cleanup();
      for (const p of prefixes.splice(0)) rmSync(`/var/run/dpdk/${p}`, { recursive: true, force: true });
    });

    it.each(['af_packet', 'af_xdp'] as const)(
      'balances curl and UDP datagrams through FULLNAT end to end on %s; servers see the local address',
      async (pmd) => {
        const dp = startDataplane(t, `curl-${pmd}`, t.wan, pmd);
        try {
          await dp.next('ready');
          const answers = [0, 1, 2, 3].map(
            () =>
              JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100/')) as {
                remote: string;
                local: string;
              },
          );
          expect(answers.map((a) => a.remote)).toEqual(Array(4).fill('10.2.0.200'));
          expect(answers.map((a) => a.local)).toEqual(['10.2.0.11', '10.2.0.12', '10.2.0.11', '10.2.0.12']);
          expect(t.exec('cli', 'ping', '-c', '1', '-W', '2', '10.1.0.100')).toMatch(/1 received/);
          // UDP: a connected socket only accepts the answer from the VIP itself.
          const udp = `const u = require('dgram').createSocket('udp4');
        setTimeout(() => process.exit(2), 3000).unref();
        u.connect(53, '10.1.0.100', () => u.send('q'));
        u.on('message', (m) => { console.log(m.toString()); process.exit(0); });`;
          const datagrams = [0, 1].map(
            () => JSON.parse(t.exec('cli', process.execPath, '-e', udp)) as { remote: string; local: string },
          );
          expect(datagrams).toEqual([
            { remote: '10.2.0.201', local: '10.2.0.11' },
            { remote: '10.2.0.201', local: '10.2.0.12' },
          ]);
          dp.child.stdin!.write('counters\n');
          const { metrics, signals, services } = JSON.parse(await dp.next('counters')) as {
            metrics: string;
            signals: unknown[];
            services: ServiceStatus[];
          };
          expect(services[1]!.servers.map((s) => [s.server, s.conns])).toEqual([
            ['10.2.0.11:5353', 1],
            ['10.2.0.12:5353', 1],
          ]);
          expect(services[0]!.servers.map((s) => [s.server, s.conns])).toEqual([
            ['10.2.0.11:8080', 2],
            ['10.2.0.12:8080', 2],
          ]);
          expect(services[0]!.servers[0]!.outBytes).toBeGreaterThan(0);
          expect(metrics).toMatch(/fulcrum_dpdk_connections \d/);
          expect(metrics).toMatch(/fulcrum_dpdk_port_packets_total\{port="wan",direction="rx"\} [1-9]/);
          expect(metrics).toMatch(/fulcrum_dpdk_port_packets_total\{port="lan",direction="tx"\} [1-9]/);
          expect(metrics).toMatch(/fulcrum_dpdk_connections_total\{event="created"\} 6/);
          expect(metrics).toMatch(/fulcrum_dpdk_packets_total\{direction="tx"\} [1-9]/);
          expect(signals).toContainEqual({
            service: 'web',
            server: '10.2.0.11:8080',
            ok: true,
            reason: 'answered',
          });
          const r = await timeToExit(dp, () => dp.child.stdin!.write('stop\n'));
          expect(r.code).toBe(0); // stop() alone lets the process end: nothing left running
          expect(r.ms).toBeLessThan(1500);
          // No XDP program left on the ports (af_xdp detaches it when the port closes).
          for (const dev of [t.wan, t.lan]) expect(t.link(dev)).not.toMatch(/xdp/);
        } finally {
          dp.child.kill('SIGKILL');
        }
      },
    );

    it.each(['af_packet'] as const)(
      'runs two worker lcores on %s: both take connections, replies are redirected to their owner, both are listed',
      async (pmd) => {
        const dp = startDataplane(t, `workers-${pmd}`, t.wan, pmd, '', 2);
        try {
          await dp.next('ready');
          // Enough flows that the kernel's fanout hash gives both workers some (all on one
          // worker: 2^-15), and replies that land on the other worker's queue.
          const answers = Array.from(
            { length: 16 },
            () =>
              JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100/')) as {
                remote: string;
                local: string;
              },
          );
          expect(answers.map((a) => a.remote)).toEqual(Array(16).fill('10.2.0.200'));
          expect(new Set(answers.map((a) => a.local))).toEqual(new Set(['10.2.0.11', '10.2.0.12']));
          const udp = `const u = require('dgram').createSocket('udp4');
        setTimeout(() => process.exit(2), 3000).unref();
        u.connect(53, '10.1.0.100', () => u.send('q'));
        u.on('message', (m) => { console.log(m.toString()); process.exit(0); });`;
          const datagrams = Array.from(
            { length: 8 },
            () => JSON.parse(t.exec('cli', process.execPath, '-e', udp)) as { remote: string },
          );
          expect(datagrams.map((d) => d.remote)).toEqual(Array(8).fill('10.2.0.201'));
          dp.child.stdin!.write('workers\n');
          const w = JSON.parse(await dp.next('workers')) as {
            counters: Record<string, number>[];
            listing: {
              complete: boolean;
              connections: { worker: number; local: string; protocol: string }[];
            };
            connections: { protocol: string; local: string; state: string }[];
            connectionEvents: { opened: number; closed: number; clients: string[] };
            info: {
              workers: number;
              ports: { steering: boolean; reason: string; rxDescriptors: number; txDescriptors: number }[];
              steeringRules: number;
            };
          };
          // af_packet has no rte_flow: every reply that lands elsewhere takes the ring.
          expect(w.info).toMatchObject({ workers: 2, steeringRules: 0 });
          // af_packet names no preferred ring size: 1,024 per queue.
          expect(w.info.ports.map((p) => [p.rxDescriptors, p.txDescriptors])).toEqual([
            [1024, 1024],
            [1024, 1024],
          ]);
          expect(w.info.ports.map((p) => p.steering)).toEqual([false, false]);
          for (const p of w.info.ports) expect(p.reason).toMatch(/not implemented/i); // ENOSYS: no flow ops
          expect(w.counters).toHaveLength(2);
          const created = w.counters.map((c) => c.conns_created!);
          expect(created[0]! + created[1]!).toBe(24);
          expect(
            created.every((n) => n > 0),
            JSON.stringify(created),
          ).toBe(true);
          expect(w.counters[0]!.redirected! + w.counters[1]!.redirected!).toBeGreaterThan(0);
          expect(w.counters.map((c) => c.drop_redirect_ring_full)).toEqual([0, 0]);
          // Batched connection:opened events from both workers reached the kernel's bus.
          expect(w.connectionEvents.opened).toBe(24);
          expect(w.connectionEvents.closed).toBe(0);
          expect(w.connectionEvents.clients.every((c) => c.startsWith('10.1.0.2:'))).toBe(true);
          // Closed TCP connections wait in TIME_WAIT, UDP sessions are NORMAL: all still listed.
          expect(w.listing.complete).toBe(true);
          expect(w.listing.connections).toHaveLength(24);
          expect(new Set(w.listing.connections.map((c) => c.worker))).toEqual(new Set([0, 1]));
          for (const c of w.listing.connections) expect(Number(c.local.split(':')[1]) % 2).toBe(c.worker);
          expect(w.connections.filter((c) => c.protocol === 'TCP')).toHaveLength(16);
          expect(w.connections.filter((c) => c.protocol === 'UDP' && c.state === 'NORMAL')).toHaveLength(8);
          dp.child.stdin!.write('counters\n');
          const { services, metrics } = JSON.parse(await dp.next('counters')) as {
            services: ServiceStatus[];
            metrics: string;
          };
          expect(services[0]!.servers.reduce((n, s) => n + s.conns, 0)).toBe(16);
          expect(services[1]!.servers.reduce((n, s) => n + s.conns, 0)).toBe(8);
          expect(metrics).toMatch(/fulcrum_dpdk_redirected_total [1-9]/);
          for (const worker of ['0', '1']) {
            expect(metrics).toMatch(
              new RegExp(`fulcrum_dpdk_worker_packets_total\\{worker="${worker}",direction="rx"\\} [1-9]`),
            );
            expect(metrics).toMatch(
              new RegExp(`fulcrum_dpdk_worker_connections\\{worker="${worker}"\\} [1-9]`),
            );
          }
          expect(metrics).toMatch(/fulcrum_dpdk_connections_total\{event="created"\} 24/);
          const r = await timeToExit(dp, () => dp.child.stdin!.write('stop\n'));
          expect(r.code).toBe(0);
          expect(r.ms).toBeLessThan(1500);
        } finally {
          dp.child.kill('SIGKILL');
        }
      },
    );

    it("runs one worker per queue pair when a port has fewer than -l has lcores (the issue's af_xdp config)", async () => {
      // af_xdp on veth cannot have more than one queue (veth has no combined channels, and
      // DPDK 22.11's af_xdp refuses queue_count > 1 there): -l 0-1 runs one worker, not an error.
      // The wan port's rings as configured; lan's at af_xdp's preferred size.
      const dp = startDataplane(
        t,
        'fewqueues',
        t.wan,
        'af_xdp',
        '',
        2,
        1,
        '',
        'rxDescriptors: 512, txDescriptors: 256',
      );
      try {
        await dp.next('ready');
        const answer = JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100/')) as {
          remote: string;
        };
        expect(answer.remote).toBe('10.2.0.200');
        dp.child.stdin!.write('workers\n');
        const w = JSON.parse(await dp.next('workers')) as {
          counters: unknown[];
          info: {
            workers: number;
            idleLcores: number;
            idleReason: string;
            ports: { rxDescriptors: number; txDescriptors: number }[];
          };
        };
        expect(w.info).toMatchObject({ workers: 1, idleLcores: 1 });
        // Configured on wan; on lan af_xdp's own preference (ETH_AF_XDP_DFLT_NUM_DESCS), not
        // the 1,024 used where a driver names none.
        expect(w.info.ports.map((p) => [p.rxDescriptors, p.txDescriptors])).toEqual([
          [512, 256],
          [2048, 2048],
        ]);
        expect(w.info.idleReason).toMatch(/has 1 queue pair\(s\).*queue_count=N for net_af_xdp/);
        expect(w.counters).toHaveLength(1);
        // A clean stop detaches the XDP program (a kill would leave it for the next test).
        expect((await timeToExit(dp, () => dp.child.stdin!.write('stop\n'))).code).toBe(0);
      } finally {
        dp.child.kill('SIGKILL');
      }
    });

    it('removing a local address drains it: its established connection goes on, new ones use the others', async () => {
      const dp = startDataplane(
        t,
        'laddr-drain',
        t.wan,
        'af_packet',
        `
  - name: drainweb
    protocol: tcp
    listen: 10.1.0.100:81
    scheduler: rr
    localAddresses: [10.2.0.210, 10.2.0.211]
    realServers:
      - { address: '10.2.0.11:8080', weight: 1 }
`,
      );
      // One keep-alive HTTP connection from cli, one request per line on stdin; each answer
      // printed with the client port, so the test sees the same connection carry on.
      const client = spawn(
        'ip',
        [
          'netns',
          'exec',
          t.cli,
          process.execPath,
          '-e',
          `const http = require('http');
           const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
           require('readline').createInterface({ input: process.stdin }).on('line', () =>
             http.get({ host: '10.1.0.100', port: 81, agent }, (res) => {
               let body = '';
               const port = res.socket.localPort;
               res.on('data', (d) => (body += d));
               res.on('end', () => console.log(JSON.stringify({ ...JSON.parse(body), port })));
             }).on('error', (e) => console.log(JSON.stringify({ error: e.message }))));`,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      children.push(client);
      const answers = createInterface({ input: client.stdout! });
      const ask = () =>
        new Promise<{ remote: string; port: number; error?: string }>((resolve) => {
          answers.once('line', (l) => resolve(JSON.parse(l)));
          client.stdin!.write('go\n');
        });
      try {
        await dp.next('ready');
        const first = await ask();
        expect(first.remote).toBe('10.2.0.210'); // the pool's first address
        // The change takes 10.2.0.210 out of the pool while that connection is open.
        dp.child.stdin!.write(`replace ${JSON.stringify(['[10.2.0.210, 10.2.0.211]', '[10.2.0.211]'])}\n`);
        await dp.next('applied');
        const again = await ask();
        expect(again).toEqual({ ...first }); // same client port, same local address: not dropped
        const fresh = JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100:81/')) as {
          remote: string;
        };
        expect(fresh.remote).toBe('10.2.0.211');
        expect((await timeToExit(dp, () => dp.child.stdin!.write('stop\n'))).code).toBe(0);
      } finally {
        client.kill('SIGKILL');
        dp.child.kill('SIGKILL');
      }
    });

    it('takes a refusing server out through the kernel passive health check', async () => {
      // 10.2.0.12:9090 has no listener: the server RSTs the SYN, the dataplane signals
      // "refused", healthcheck-passive marks it DOWN and the kernel gives it weight 0.
      const dp = startDataplane(
        t,
        'passive',
        t.wan,
        'af_packet',
        `
  - name: checked
    protocol: tcp
    listen: 10.1.0.100:81
    scheduler: rr
    localAddresses: [10.2.0.202]
    healthChecks: [{ name: passive, options: { inhibitMin: '60s' } }]
    realServers:
      - { address: '10.2.0.12:9090', weight: 1 }
      - { address: '10.2.0.11:8080', weight: 1 }
`,
      );
      try {
        await dp.next('ready');
        const curl = () => {
          try {
            return (
              JSON.parse(t.exec('cli', 'curl', '-s', '-m', '3', 'http://10.1.0.100:81/')) as { local: string }
            ).local;
          } catch {
            return 'refused';
          }
        };
        expect(curl()).toBe('refused'); // rr starts with the dead server
        expect(JSON.parse(await dp.next('health'))).toEqual({ server: '10.2.0.12:9090', health: 'down' });
        await new Promise((r) => setTimeout(r, 100)); // the new plan reaches the poll loop
        expect([curl(), curl(), curl()]).toEqual(['10.2.0.11', '10.2.0.11', '10.2.0.11']);
        dp.child.stdin!.write('counters\n');
        const { signals, health } = JSON.parse(await dp.next('counters')) as {
          signals: unknown[];
          health: unknown[];
        };
        expect(signals).toContainEqual({
          service: 'checked',
          server: '10.2.0.12:9090',
          ok: false,
          reason: 'refused',
        });
        expect(health).toContainEqual(expect.objectContaining({ server: '10.2.0.12:9090', health: 'down' }));
      } finally {
        dp.child.kill('SIGKILL');
      }
    });

    const flood = requires({ commands: ['hping3', 'wrk', 'tshark'] });
    const synproxyService = `
  - name: guarded
    protocol: tcp
    listen: 10.1.0.100:82
    scheduler: rr
    synproxy: true
    localAddresses: [10.2.0.203]
    realServers:
      - { address: '10.2.0.11:8080', weight: 1 }
      - { address: '10.2.0.12:8080', weight: 1 }
`;
    it.skipIf(flood.skip)(
      `SYNPROXY: curl and wrk get through, a SYN flood reaches no server and is counted${flood.note}`,
      { timeout: 60_000 },
      async () => {
        const dp = startDataplane(t, 'synproxy', t.wan, 'af_packet', synproxyService);
        const spawned: ChildProcess[] = [];
        const run = (ns: string, cmd: string[]) => {
          const c = spawn('ip', ['netns', 'exec', ns, ...cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
          spawned.push(c);
          let out = '';
          c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
          c.stderr!.on('data', (d: Buffer) => (out += d.toString()));
          return { c, done: new Promise<string>((r) => c.once('exit', () => r(out))), out: () => out };
        };
        try {
          await dp.next('ready');
          const answers = [0, 1, 2, 3].map(
            () =>
              JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100:82/')) as {
                remote: string;
                local: string;
              },
          );
          expect(answers.map((a) => a.remote)).toEqual(Array(4).fill('10.2.0.203'));
          expect(answers.map((a) => a.local).sort()).toEqual([
            '10.2.0.11',
            '10.2.0.11',
            '10.2.0.12',
            '10.2.0.12',
          ]);

          // Every SYN the servers receive, from now until the flood and wrk are over.
          const pcapFile = `/tmp/fulcrum-synproxy-${t.id}.pcap`;
          const capture = run(t.srv, [
            'tshark',
            '-n',
            '-i',
            t.lanPeer,
            '-f',
            'tcp[13] & 0x12 == 0x02',
            '-a',
            'duration:12',
            '-w',
            pcapFile,
          ]);
          for (let i = 0; i < 50 && !/Capturing on/.test(capture.out()); i++)
            await new Promise((r) => setTimeout(r, 100));
          expect(capture.out()).toMatch(/Capturing on/);
          // dumpcap says so just before it really captures (CI once missed wrk's first SYN).
          await new Promise((r) => setTimeout(r, 500));
          // A bounded flood to the VIP only, spoofing a few addresses of the client's own subnet.
          const sources = ['10.1.0.50', '10.1.0.51', '10.1.0.52', '10.1.0.53'];
          const floods = sources.map((a) =>
            run(t.cli, [
              'hping3',
              '-q',
              '-S',
              '-p',
              '82',
              '-a',
              a,
              '-i',
              'u2000',
              '-c',
              '1500',
              '10.1.0.100',
            ]),
          );
          const wrk = run(t.cli, ['wrk', '-t', '1', '-c', '8', '-d', '4s', 'http://10.1.0.100:82/']);
          const [wrkOut, ...floodOut] = await Promise.all([wrk.done, ...floods.map((f) => f.done)]);
          await capture.done;
          const sent = floodOut
            .map((o) => Number(/(\d+) packets transmitted/.exec(o)?.[1] ?? 0))
            .reduce((a, b) => a + b, 0);
          expect(sent).toBeGreaterThan(1000);
          const requests = Number(/(\d+) requests in/.exec(wrkOut)?.[1] ?? 0);
          expect(requests, wrkOut).toBeGreaterThan(50);
          expect(wrkOut, wrkOut).not.toMatch(/Socket errors|Non-2xx/);
          const syns = execFileSync('tshark', ['-n', '-r', pcapFile, '-T', 'fields', '-e', 'ip.src'], {
            encoding: 'utf8',
          })
            .trim()
            .split('\n')
            .filter(Boolean);
          rmSync(pcapFile, { force: true });
          dp.child.stdin!.write('counters\n');
          const { metrics } = JSON.parse(await dp.next('counters')) as { metrics: string };
          const counter = (event: string) =>
            Number(
              new RegExp(`fulcrum_dpdk_synproxy_total\\{event="${event}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0,
            );
          const seen = JSON.stringify({
            sent,
            requests,
            serverSyns: syns.length,
            answered: counter('syn_answered'),
            valid: counter('ack_valid'),
            retransmits: counter('rs_syn_retransmits'),
          });
          // Only the balancer's local address ever opens connections, one SYN per validated ACK.
          expect(new Set(syns), seen).toEqual(new Set(['10.2.0.203']));
          expect(syns.length, seen).toBe(counter('ack_valid') - 4 + counter('rs_syn_retransmits'));
          expect(syns.length, seen).toBeLessThan(100);
          // The flood was answered with cookies (and counted), not forwarded.
          expect(counter('syn_answered'), seen).toBeGreaterThanOrEqual(sent * 0.9);
          expect(counter('bad_cookie')).toBe(0);
        } finally {
          for (const c of spawned) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
          dp.child.kill('SIGKILL');
        }
      },
    );

    it('SYNPROXY with deferRsSyn: curl gets through, a client that completes the handshake and sends nothing reaches no server', async () => {
      const dp = startDataplane(
        t,
        'defer',
        t.wan,
        'af_packet',
        synproxyService,
        1,
        1,
        '\n    synproxy: { deferRsSyn: true }',
      );
      try {
        await dp.next('ready');
        for (let i = 0; i < 2; i++) {
          const answer = JSON.parse(t.exec('cli', 'curl', '-s', '-m', '5', 'http://10.1.0.100:82/')) as {
            remote: string;
          };
          expect(answer.remote).toBe('10.2.0.203');
        }
        // Connected from the client's point of view (the cookie SYN-ACK), silent for a second.
        const silent = `const s = require('net').connect({ host: '10.1.0.100', port: 82 });
          s.on('connect', () => setTimeout(() => { console.log('connected'); s.destroy(); }, 1000));
          s.on('error', (e) => { console.log(e.code); process.exit(1); });`;
        expect(t.exec('cli', process.execPath, '-e', silent).trim()).toBe('connected');
        dp.send('counters');
        const { metrics, services } = JSON.parse(await dp.next('counters')) as {
          metrics: string;
          services: ServiceStatus[];
        };
        const counter = (event: string) =>
          Number(
            new RegExp(`fulcrum_dpdk_synproxy_total\\{event="${event}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0,
          );
        expect(counter('syn_answered')).toBe(3);
        expect(counter('ack_deferred')).toBeGreaterThanOrEqual(3); // each client's handshake ACK
        expect(counter('ack_valid')).toBe(2); // only the two requests opened a server
        const guarded = services.find((s) => s.name === 'guarded')!;
        expect(guarded.servers.reduce((n, s) => n + s.conns, 0)).toBe(2);
      } finally {
        dp.child.kill('SIGKILL');
      }
    });

    it('reports a port that cannot open its interface as FULCRUM_DATAPLANE_EAL, and exits', async () => {
      const dp = startDataplane(t, 'badport', `${t.wan}x`);
      try {
        await expect(dp.next('ready')).rejects.toThrow(/FULCRUM_DATAPLANE_EAL.*DPDK did not start/);
        expect(await dp.exited).toEqual({ code: 3, signal: null });
      } finally {
        dp.child.kill('SIGKILL');
      }
    });

    it.each([
      ['process.exit()', (dp: Dataplane) => dp.child.stdin!.write('exit\n'), { code: 0, signal: null }],
      [
        'an uncaught exception',
        (dp: Dataplane) => dp.child.stdin!.write('throw\n'),
        { code: 1, signal: null },
      ],
      ['SIGTERM', (dp: Dataplane) => dp.child.kill('SIGTERM'), { code: null, signal: 'SIGTERM' }],
      ['SIGINT', (dp: Dataplane) => dp.child.kill('SIGINT'), { code: null, signal: 'SIGINT' }],
      [
        'SIGTERM with af_xdp ports',
        (dp: Dataplane) => dp.child.kill('SIGTERM'),
        { code: null, signal: 'SIGTERM' },
        'af_xdp' as const,
      ],
      [
        'SIGTERM with two worker lcores',
        (dp: Dataplane) => dp.child.kill('SIGTERM'),
        { code: null, signal: 'SIGTERM' },
        'af_packet' as const,
        2,
      ],
      [
        'process.exit() with two worker lcores',
        (dp: Dataplane) => dp.child.stdin!.write('exit\n'),
        { code: 0, signal: null },
        'af_packet' as const,
        2,
      ],
    ] as const)(
      'ends within about a second on %s',
      async (_name, act, expected, pmd: Pmd = 'af_packet', workers: number = 1) => {
        const dp = startDataplane(
          t,
          `exit${Math.random().toString(36).slice(2, 7)}`,
          t.wan,
          pmd,
          '',
          workers,
        );
        try {
          await dp.next('ready');
          const r = await timeToExit(dp, () => act(dp));
          expect({ code: r.code, signal: r.signal }, JSON.stringify(r)).toEqual(expected);
          expect(r.ms).toBeLessThan(1500);
          for (const dev of [t.wan, t.lan]) expect(t.link(dev)).not.toMatch(/xdp/);
        } finally {
          dp.child.kill('SIGKILL');
        }
      },
    );
  },
);
