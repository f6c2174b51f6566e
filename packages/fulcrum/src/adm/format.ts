import { isIP } from 'node:net';
import type { ConnectionEntry } from '@fulcrum/kernel';
import type { ServiceView, TrafficStats } from '../admin/status.js';

/*
 * The text layouts of ipvsadm 1.31 (the Debian package), so that an operator reads them
 * without thinking: print_title, print_service_entry, print_conn and print_largenum in
 * ipvsadm.c, column for column. Fulcrum forwards FULLNAT, which ipvsadm names "FullNat".
 */

const left = (v: string | number, width: number) => String(v).padEnd(width);
const right = (v: string | number, width: number) => String(v).padStart(width);

/** ipvsadm's print_largenum: 9 columns, scaled to K/M/G/T past 100 million unless --exact. */
export function largeNumber(n: number, exact = false): string {
  const i = Math.max(0, Math.floor(n));
  if (exact) {
    const s = String(i);
    return right(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (i < 1e8) return right(i, 9);
  if (i < 1e9) return right(Math.floor(i / 1e3), 8) + 'K';
  if (i < 1e11) return right(Math.floor(i / 1e6), 8) + 'M';
  if (i < 1e14) return right(Math.floor(i / 1e9), 8) + 'G';
  return right(Math.floor(i / 1e12), 8) + 'T';
}

export type ListMode = 'plain' | 'stats' | 'rate';

/** Rates per second, as `ipvsadm --rate` shows them. */
export interface Rates {
  cps: number;
  inPps: number;
  outPps: number;
  inBps: number;
  outBps: number;
}

export function title(mode: ListMode): string {
  if (mode === 'stats')
    return `${left('Prot LocalAddress:Port', 33)} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  if (mode === 'rate')
    return `${left('Prot LocalAddress:Port', 33)} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((h) => right(h, 8)).join(' ')}\n  -> RemoteAddress:Port\n`;
  return 'Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n';
}

const serviceName = (s: ServiceView) => `${left(s.protocol.toUpperCase(), 4)} ${s.virtual}`;

/** Flags after a server's InActConn, comma-separated, as DPVS's ipvsadm appends "inhibited". */
function serverFlags(s: ServiceView['servers'][number]): string {
  const flags = [
    ...(s.draining ? ['draining'] : []),
    ...(s.health === 'down' ? ['down'] : []),
    ...(!s.inService ? ['removed'] : []),
    ...(s.sorry ? ['sorry'] : []),
  ];
  return flags.length ? ` ${flags.join(',')}` : '';
}

function statsColumns(s: TrafficStats, exact: boolean): string {
  return [s.conns, s.inPkts, s.outPkts, s.inBytes, s.outBytes].map((n) => largeNumber(n, exact)).join('');
}

function rateColumns(r: Rates, exact: boolean): string {
  return [r.cps, r.inPps, r.outPps, r.inBps, r.outBps].map((n) => largeNumber(n, exact)).join('');
}

/** Orders addresses as ipvsadm does (numerically, IPv4 before IPv6), then ports. */
export function compareEndpoints(a: string, b: string): number {
  const split = (e: string) => {
    const i = e.lastIndexOf(':');
    return { addr: e.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(e.slice(i + 1)) };
  };
  const x = split(a);
  const y = split(b);
  const key = (addr: string) => {
    if (isIP(addr) === 4)
      return (
        '4' +
        addr
          .split('.')
          .map((o) => o.padStart(3, '0'))
          .join('.')
      );
    const [head = '', tail = ''] = addr.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const groups = addr.includes('::')
      ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
      : h;
    return '6' + groups.map((g) => g.padStart(4, '0')).join(':');
  };
  const kx = key(x.addr);
  const ky = key(y.addr);
  return kx < ky ? -1 : kx > ky ? 1 : x.port - y.port;
}

export function sortServices(services: ServiceView[]): ServiceView[] {
  return [...services].sort(
    (a, b) =>
      (a.protocol === b.protocol ? 0 : a.protocol === 'tcp' ? -1 : 1) ||
      compareEndpoints(a.virtual, b.virtual),
  );
}

export interface ListOptions {
  mode: ListMode;
  exact?: boolean;
  /** Per service name and server, when mode is rate. */
  rates?: Map<string, { service: Rates; servers: Map<string, Rates> }>;
}

/** The lines `ipvsadm -Ln` (or `--stats`, `--rate`) prints for services and their servers, after the title. */
export function formatServices(services: ServiceView[], options: ListOptions): string {
  const exact = !!options.exact;
  let out = '';
  for (const s of sortServices(services)) {
    const name = serviceName(s);
    if (options.mode === 'stats') out += left(name, 33) + statsColumns(s.stats, exact) + '\n';
    else if (options.mode === 'rate')
      out += left(name, 33) + rateColumns(rateOf(options, s.name), exact) + '\n';
    else
      out += `${name} ${s.scheduler}${s.persistence !== undefined ? ` persistent ${s.persistence}` : ''}\n`;
    const servers = s.servers.filter((d) => !d.sorry || d.weight > 0);
    for (const d of [...servers].sort((a, b) => compareEndpoints(a.server, b.server))) {
      if (options.mode === 'stats') out += `  -> ${left(d.server, 28)}${statsColumns(d.stats, exact)}\n`;
      else if (options.mode === 'rate') {
        const r = rateOf(options, s.name, d.server);
        out += `  -> ${left(d.server, 28)} ${right(r.cps, 8)} ${right(r.inPps, 8)} ${right(r.outPps, 8)}${largeNumber(r.inBps, exact)}${largeNumber(r.outBps, exact)}\n`;
      } else
        out += `  -> ${left(d.server, 28)} ${left('FullNat', 7)} ${left(d.weight, 6)} ${left(d.activeConns, 10)} ${left(d.inactiveConns, 10)}${serverFlags(d)}\n`;
    }
  }
  return out;
}

const NO_RATE: Rates = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function rateOf(options: ListOptions, service: string, server?: string): Rates {
  const r = options.rates?.get(service);
  return (server === undefined ? r?.service : r?.servers.get(server)) ?? NO_RATE;
}

/** Rates per second between two samples of the same services, `seconds` apart. */
export function computeRates(
  before: ServiceView[],
  after: ServiceView[],
  seconds: number,
): Map<string, { service: Rates; servers: Map<string, Rates> }> {
  const per = (a: TrafficStats | undefined, b: TrafficStats): Rates => {
    const d = (k: keyof TrafficStats) => Math.max(0, Math.round((b[k] - (a?.[k] ?? 0)) / seconds));
    return {
      cps: d('conns'),
      inPps: d('inPkts'),
      outPps: d('outPkts'),
      inBps: d('inBytes'),
      outBps: d('outBytes'),
    };
  };
  const old = new Map(before.map((s) => [s.name, s]));
  const out = new Map<string, { service: Rates; servers: Map<string, Rates> }>();
  for (const s of after) {
    const o = old.get(s.name);
    const servers = new Map(o?.servers.map((d) => [d.server, d.stats]));
    out.set(s.name, {
      service: per(o?.stats, s.stats),
      servers: new Map(s.servers.map((d) => [d.server, per(servers.get(d.server), d.stats)])),
    });
  }
  return out;
}

/** `ipvsadm -Lnc`: the title lines and one line per entry. */
export function formatConnections(rows: ConnectionEntry[]): string {
  let out = 'IPVS connection entries\n';
  out += `pro expire ${left('state', 11)} ${left('source', 18)} ${left('virtual', 18)} destination\n`;
  for (const c of rows) {
    const total = Math.floor(c.expiresInMs / 1000);
    const expire = `${String(Math.floor(total / 60)).padStart(2, '0')}:${String(total % 60).padStart(2, '0')}`;
    out += `${left(c.protocol, 3)} ${left(expire, 6)} ${left(c.state, 11)} ${left(c.client, 18)} ${left(c.virtual, 18)} ${c.server}\n`;
  }
  return out;
}

export function formatTimeouts(t: { tcp: number; tcpFin: number; udp: number }): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpFin} ${t.udp}\n`;
}
