// Three network namespaces: lb, where the DPDK process runs and owns the wan and lan ends
// of two veth pairs, and cli 10.1.0.2/24 and srv 10.2.0.11+12/24 at their other ends.
// The balancer has a namespace of its own because af_packet's fanout group ids (DPDK
// derives them from the PID and the interface index) are per namespace: two dataplanes
// in one namespace, from tests running side by side, could draw the same id and fail to
// open their ports. Every name carries a unique id and is removed by cleanup(), even
// after a failure.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';

let seq = 0;
const run = (cmd: string, ...args: string[]) =>
  execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export class Topology {
  readonly id = `${process.pid % 100000}${seq++}`;
  readonly lb = `fdb${this.id}`;
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
    for (const ns of [this.lb, this.cli, this.srv]) run('ip', 'netns', 'add', ns);
    run('ip', '-n', this.lb, 'link', 'set', 'lo', 'up');
    for (const [own, peer, ns] of [
      [this.wan, this.wanPeer, this.cli],
      [this.lan, this.lanPeer, this.srv],
    ] as const) {
      run('ip', '-n', this.lb, 'link', 'add', own, 'type', 'veth', 'peer', 'name', peer);
      run('ip', '-n', this.lb, 'link', 'set', peer, 'netns', ns);
      try {
        // Less noise on the DPDK port.
        run('ip', 'netns', 'exec', this.lb, 'sysctl', '-qw', `net.ipv6.conf.${own}.disable_ipv6=1`);
      } catch {
        /* no IPv6 here: nothing to quieten */
      }
      run('ip', '-n', this.lb, 'link', 'set', own, 'up');
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

  /** `ip link show` of one of the balancer's ports (wan or lan), in its namespace. */
  link(dev: string): string {
    return run('ip', '-n', this.lb, 'link', 'show', 'dev', dev);
  }

  /**
   * A command line that runs `argv` in the balancer's namespace. nsenter switches only the
   * network namespace (`ip netns exec` would also remount /sys, hiding the bpf filesystem
   * af_xdp's program loader looks at); it execs, so the child's PID is the program's.
   */
  inLb(argv: readonly string[]): [string, string[]] {
    return ['nsenter', [`--net=/var/run/netns/${this.lb}`, ...argv]];
  }

  cleanup(): void {
    for (const c of this.#children) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
    for (const ns of [this.lb, this.cli, this.srv])
      try {
        run('ip', 'netns', 'del', ns); // takes its veth ends, and so both pairs, with it
      } catch {
        /* already gone */
      }
  }
}
