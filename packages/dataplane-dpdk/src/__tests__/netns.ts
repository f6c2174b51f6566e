// Two network namespaces joined to the root namespace by veth pairs whose root ends the
// DPDK process owns (net_af_packet): cli 10.1.0.2/24 on wan, srv 10.2.0.11+12/24 on lan.
// Every name carries a unique id and is removed by cleanup(), even after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';

let seq = 0;
const run = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export class Topology {
  readonly id = `${process.pid % 100000}${seq++}`;
  readonly cli = `fdc${this.id}`;
  readonly srv = `fds${this.id}`;
  readonly wan = `fdw${this.id}`;
  readonly lan = `fdl${this.id}`;
  readonly wanPeer = `fdwp${this.id}`;
  readonly lanPeer = `fdlp${this.id}`;
  clientMac = '';
  serverMac = '';
  readonly #children: ChildProcess[] = [];

  setup(): this {
    run('ip', 'netns', 'add', this.cli);
    run('ip', 'netns', 'add', this.srv);
    for (const [own, peer, ns] of [
      [this.wan, this.wanPeer, this.cli],
      [this.lan, this.lanPeer, this.srv],
    ] as const) {
      run('ip', 'link', 'add', own, 'type', 'veth', 'peer', 'name', peer);
      run('ip', 'link', 'set', peer, 'netns', ns);
      try {
        writeFileSync(`/proc/sys/net/ipv6/conf/${own}/disable_ipv6`, '1'); // less noise on the DPDK port
      } catch {
        /* no IPv6 here: nothing to quieten */
      }
      run('ip', 'link', 'set', own, 'up');
      run('ip', '-n', ns, 'link', 'set', 'lo', 'up');
      run('ip', '-n', ns, 'link', 'set', peer, 'up');
      // DPDK-NOTES: with TX checksum offload on, TCP segments leave with partial checksums.
      run('ip', 'netns', 'exec', ns, 'ethtool', '-K', peer, 'tx', 'off');
    }
    run('ip', '-n', this.cli, 'addr', 'add', '10.1.0.2/24', 'dev', this.wanPeer);
    run('ip', '-n', this.cli, 'route', 'add', 'default', 'via', '10.1.0.1');
    run('ip', '-n', this.srv, 'addr', 'add', '10.2.0.11/24', 'dev', this.lanPeer);
    run('ip', '-n', this.srv, 'addr', 'add', '10.2.0.12/24', 'dev', this.lanPeer);
    run('ip', '-n', this.srv, 'route', 'add', 'default', 'via', '10.2.0.1');
    const mac = (ns: string, dev: string) =>
      (JSON.parse(run('ip', '-n', ns, '-j', 'link', 'show', dev)) as { address: string }[])[0]!.address;
    this.clientMac = mac(this.cli, this.wanPeer);
    this.serverMac = mac(this.srv, this.lanPeer);
    return this;
  }

  /**
   * Servers in srv that answer with the address they saw and the address they were reached
   * on: HTTP on 0.0.0.0:8080, UDP on 10.2.0.11:5353 and 10.2.0.12:5353.
   */
  async startServer(): Promise<void> {
    const code = `
      const reply = (remote, local) => JSON.stringify({ remote, local });
      require('http').createServer((q, s) => s.end(reply(q.socket.remoteAddress, q.socket.localAddress))).listen(8080, '0.0.0.0', () => console.log('listening'));
      for (const a of ['10.2.0.11', '10.2.0.12']) {
        const u = require('dgram').createSocket('udp4');
        u.on('message', (m, r) => u.send(reply(r.address, a), r.port, r.address));
        u.bind(5353, a);
      }`;
    const child = spawn('ip', ['netns', 'exec', this.srv, process.execPath, '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.#children.push(child);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (c) => reject(new Error(`server exited (${c})`)));
    });
  }

  exec(ns: 'cli' | 'srv', ...args: string[]): string {
    return run('ip', 'netns', 'exec', ns === 'cli' ? this.cli : this.srv, ...args);
  }

  cleanup(): void {
    for (const c of this.#children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    for (const ns of [this.cli, this.srv])
      try {
        run('ip', 'netns', 'del', ns); // takes the peers, and so both veth pairs, with it
      } catch {
        /* already gone */
      }
    for (const dev of [this.wan, this.lan])
      try {
        run('ip', 'link', 'del', dev);
      } catch {
        /* removed with its peer */
      }
  }
}
