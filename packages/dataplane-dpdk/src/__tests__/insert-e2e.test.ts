import { requires } from '@fulcrum/testkit';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeUnavailableReason } from '../native.js';
import { dataplaneYaml, distReason, startChild, type Dataplane } from './e2e.js';
import { Topology } from './netns.js';

const STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';
const need = requires({
  root: true,
  commands: ['ip', 'ethtool', 'curl', 'nginx', 'tshark'],
  check: () =>
    nativeUnavailableReason() ??
    distReason(['kernel', 'toa', 'proxy-protocol']) ??
    (existsSync(STREAM_MODULE)
      ? undefined
      : `needs nginx's stream module (${STREAM_MODULE}, libnginx-mod-stream)`),
});

/** nginx in the server namespace, own config, pid file and logs in a temp dir; stopped by PID. */
class Nginx {
  readonly dir = mkdtempSync(join(tmpdir(), 'fulcrum-nginx-'));
  child?: ChildProcess;

  start(t: Topology): Promise<void> {
    for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(this.dir, d));
    const conf = join(this.dir, 'nginx.conf');
    writeFileSync(
      conf,
      `load_module ${STREAM_MODULE};
daemon off;
master_process off;
pid ${this.dir}/nginx.pid;
error_log ${this.dir}/error.log;
events { worker_connections 64; }
http {
  client_body_temp_path ${this.dir}/body;
  proxy_temp_path ${this.dir}/proxy;
  fastcgi_temp_path ${this.dir}/fastcgi;
  uwsgi_temp_path ${this.dir}/uwsgi;
  scgi_temp_path ${this.dir}/scgi;
  log_format pp '$proxy_protocol_addr $proxy_protocol_port $remote_addr $server_port';
  access_log ${this.dir}/access.log pp;
  server {
    listen 10.2.0.11:8081 proxy_protocol;
    listen 10.2.0.12:8082 proxy_protocol;
    location / { return 200 "$proxy_protocol_addr $proxy_protocol_port\\n"; }
  }
}
stream {
  # Speaks first and never reads: behind PROXY protocol this only works when the header
  # reaches the server without waiting for client data.
  server {
    listen 10.2.0.11:8084 proxy_protocol;
    return "$proxy_protocol_addr $proxy_protocol_port\\n";
  }
}
`,
    );
    const child = spawn('ip', ['netns', 'exec', t.srv, 'nginx', '-p', this.dir, '-c', conf], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + 5000;
      const poll = () => {
        if (child.exitCode !== null)
          return reject(new Error(`nginx exited: ${readFileSync(join(this.dir, 'error.log'), 'utf8')}`));
        let listening = false;
        try {
          listening = t.exec('srv', 'ss', '-Hltn', 'sport = :8082').includes('8082');
        } catch {
          /* not yet */
        }
        if (listening) resolve();
        else if (Date.now() > deadline) reject(new Error('nginx did not listen'));
        else setTimeout(poll, 100);
      };
      poll();
    });
  }

  log(): string[] {
    return readFileSync(join(this.dir, 'access.log'), 'utf8').trim().split('\n');
  }

  stop(): void {
    if (this.child?.pid && this.child.exitCode === null) process.kill(this.child.pid, 'SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function startDataplane(t: Topology, prefix: string, services: string): Dataplane {
  const yaml = `${dataplaneYaml(t, { prefix })}
services:
${services}`;
  return startChild(t, yaml);
}

// Each service twice: at port p plainly, and at p + 10 behind SYNPROXY (the balancer
// completes the client's handshake itself and opens the server's afterwards, so what it
// inserts rides packets it generated, in a sequence space shifted both ways).
const service = (name: string, port: number, server: string, passthrough: string, synproxy = false) => `
  - name: ${name}
    protocol: tcp
    listen: 10.1.0.100:${port}
    scheduler: rr
    synproxy: ${synproxy}
    localAddresses: [10.2.0.200]
    passthrough: ${passthrough}
    realServers:
      - { address: '${server}', weight: 1 }`;

describe.skipIf(need.skip)(
  `TOA and PROXY protocol end to end: curl in cli, nginx and tshark in srv${need.note}`,
  () => {
    const t = new Topology();
    const nginx = new Nginx();
    const prefix = `fulcrum-${t.id}-insert`;
    let dp: Dataplane | undefined;
    /** curl in the client namespace, from a chosen source port, to the VIP's `port`. */
    const curlFrom = (cport: number, port: number) =>
      t.exec('cli', 'curl', '-s', '-m', '5', '--local-port', String(cport), `http://10.1.0.100:${port}/`);
    beforeAll(async () => {
      t.setup();
      await t.startServer();
      await nginx.start(t);
      const services = [
        ['pp1', 81, '10.2.0.11:8081', '{ name: proxy-protocol, options: { version: 1 } }'],
        ['pp2', 82, '10.2.0.12:8082', '{ name: proxy-protocol, options: { version: 2 } }'],
        ['toa', 83, '10.2.0.11:8080', '{ name: toa }'],
        ['first', 84, '10.2.0.11:8084', '{ name: proxy-protocol, options: { version: 2 } }'],
      ] as const;
      dp = startDataplane(
        t,
        prefix,
        services
          .flatMap(([name, port, server, pt]) => [
            service(name, port, server, pt),
            service(`${name}-synproxy`, port + 10, server, pt, true),
          ])
          .join(''),
      );
      await dp.next('ready');
    }, 60_000);
    afterAll(() => {
      if (dp?.child.pid && dp.child.exitCode === null) process.kill(dp.child.pid, 'SIGKILL');
      nginx.stop();
      t.cleanup();
      rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
    });

    it.each([
      ['v1', 81, 45081],
      ['v2', 82, 45082],
      ['v1 behind SYNPROXY', 91, 45091],
      ['v2 behind SYNPROXY', 92, 45092],
    ])(
      'PROXY %s: nginx logs the client namespace address and port as $proxy_protocol_addr',
      (_, port, cport) => {
        const body = curlFrom(cport, port);
        expect(body.trim()).toBe(`10.1.0.2 ${cport}`);
        // nginx's own log: the PROXY addresses, and the TCP peer it really saw (the local address).
        expect(nginx.log()).toContain(`10.1.0.2 ${cport} 10.2.0.200 ${port % 10 === 1 ? 8081 : 8082}`);
      },
    );

    it.each([
      ['', 84],
      [' behind SYNPROXY', 94],
    ])('PROXY v2 to a server that speaks first%s: the header does not wait for client data', (_, port) => {
      const client = `const s = require('net').connect({ host: '10.1.0.100', port: ${port}, localPort: 45${port} });
        let got = '';
        setTimeout(() => process.exit(2), 3000).unref();
        s.on('data', (d) => (got += d));
        s.on('end', () => { console.log(got.trim()); process.exit(0); });`;
      expect(t.exec('cli', process.execPath, '-e', client).trim()).toBe(`10.1.0.2 45${port}`);
    });

    it.each([
      ['', 83],
      [' behind SYNPROXY', 93],
    ])(
      'TOA%s: option 254 with the client address and port on the handshake ACK and the first data, checksums valid (tshark in srv)',
      async (_, port) => {
        const cport = 45000 + port;
        const pcapFile = join(nginx.dir, `toa-${port}.pcap`);
        const cap = spawn(
          'ip',
          ['netns', 'exec', t.srv, 'tshark', '-n', '-i', t.lanPeer, '-w', pcapFile, '-f', 'tcp port 8080'],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        try {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('tshark did not start capturing')), 10_000);
            createInterface({ input: cap.stderr! }).on('line', (l) => {
              if (/Capturing on/.test(l)) {
                clearTimeout(timer);
                setTimeout(resolve, 300); // the message comes just before the capture really starts
              }
            });
          });
          const body = JSON.parse(curlFrom(cport, port)) as { remote: string };
          // No TOA module in this kernel: the server still sees the local address.
          expect(body.remote).toBe('10.2.0.200');
          // Until the capture holds the whole exchange (dumpcap writes as it goes).
          const count = () => {
            try {
              return execFileSync('tshark', ['-n', '-r', pcapFile], {
                encoding: 'utf8',
                stdio: ['ignore', 'pipe', 'ignore'],
              })
                .trim()
                .split('\n').length;
            } catch {
              return 0;
            }
          };
          for (let i = 0; i < 50 && count() < 10; i++) await new Promise((r) => setTimeout(r, 100));
        } finally {
          if (cap.pid) process.kill(cap.pid, 'SIGINT');
          await new Promise((r) => cap.once('exit', r));
        }
        const rows = execFileSync(
          'tshark',
          [
            '-n',
            '-r',
            pcapFile,
            '-o',
            'ip.check_checksum:TRUE',
            '-o',
            'tcp.check_checksum:TRUE',
            '-Y',
            'ip.src == 10.2.0.200',
            '-T',
            'fields',
            '-E',
            'separator=|',
            '-e',
            'tcp.flags',
            '-e',
            'tcp.len',
            '-e',
            'ip.checksum.status',
            '-e',
            'tcp.checksum.status',
            '-e',
            'tcp.option_kind',
            '-e',
            'tcp.options.experimental.exid',
            '-e',
            'tcp.options.experimental.data',
          ],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
        )
          .trim()
          .split('\n')
          .map((l) => l.split('|'));
        expect(rows.length).toBeGreaterThanOrEqual(4);
        for (const r of rows) expect([r[2], r[3]]).toEqual(['1', '1']);
        const [syn, ack, data] = rows;
        expect(Number(syn![0]) & 0x02).toBe(0x02);
        expect(syn![4]!.split(',')).not.toContain('254');
        expect(Number(ack![0])).toBe(0x10); // the handshake-completing ACK
        expect(Number(data![1])).toBeGreaterThan(0); // the first data segment (the GET)
        for (const r of [ack!, data!]) {
          expect(r[4]!.split(',')[0]).toBe('254');
          expect(Number(r[5])).toBe(cport);
          expect(r[6]!.replace(/:/g, '')).toBe('0a010002'); // 10.1.0.2
        }
      },
    );

    it("the services behind SYNPROXY answered the clients' handshakes themselves: one cookie and one valid ACK per connection", async () => {
      dp!.child.stdin!.write('counters\n');
      const { metrics } = JSON.parse(await dp!.next('counters')) as { metrics: string };
      const count = (event: string) =>
        Number(
          new RegExp(`fulcrum_dpdk_synproxy_total\\{event="${event}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0,
        );
      // PROXY v1 and v2, the server speaking first, TOA: four connections behind SYNPROXY.
      expect(count('syn_answered')).toBe(4);
      expect(count('ack_valid')).toBe(4);
    });
  },
);
