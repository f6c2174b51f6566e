import type { PassthroughSettings, RealServerView, SchedulePlan, ServiceSnapshot } from '@fulcrum/kernel';
import { PacketHarness, type HarnessOptions } from '../harness.js';
import { tcpFrame, type TcpFields } from './frames.js';

// Two-arm topology as in the issue: clients on wan 10.1.0.0/24, servers on lan 10.2.0.0/24.
export const WAN_MAC = '02:00:00:00:00:01';
export const LAN_MAC = '02:00:00:00:00:02';
export const CLIENT = { ip: '10.1.0.2', mac: '02:00:00:00:01:02' };
export const GATEWAY = { ip: '10.1.0.254', mac: '02:00:00:00:01:fe' };
export const SERVERS = [
  { ip: '10.2.0.11', mac: '02:00:00:00:02:11' },
  { ip: '10.2.0.12', mac: '02:00:00:00:02:12' },
  { ip: '10.2.0.13', mac: '02:00:00:00:02:13' },
];
export const VIP = '10.1.0.100';
export const LADDR = '10.2.0.200';
export const fromClient = { src: CLIENT.mac, dst: WAN_MAC };
export const fromServer = (i: number) => ({ src: SERVERS[i]!.mac, dst: LAN_MAC });
/** A TCP segment from the client to the VIP's port 80. */
export const clientSeg = (sport: number, f: Partial<TcpFields> & { flags: number }) =>
  tcpFrame(fromClient, { src: CLIENT.ip, dst: VIP, sport, dport: 80, ...f });
/** A TCP segment from server `i` (port 8080) to the local address's port `lport`. */
export const serverSeg = (i: number, lport: number, f: Partial<TcpFields> & { flags: number }) =>
  tcpFrame(fromServer(i), { src: SERVERS[i]!.ip, dst: LADDR, sport: 8080, dport: lport, ...f });

export function harness(extra: Partial<HarnessOptions> = {}): PacketHarness {
  return new PacketHarness({
    ports: [
      { name: 'wan', mac: WAN_MAC, addresses: ['10.1.0.1/24'] },
      { name: 'lan', mac: LAN_MAC, addresses: ['10.2.0.1/24'] },
    ],
    routes: [{ to: '0.0.0.0/0', via: GATEWAY.ip, port: 'wan' }],
    neighbors: [
      { port: 'wan', address: CLIENT.ip, mac: CLIENT.mac },
      { port: 'wan', address: GATEWAY.ip, mac: GATEWAY.mac },
      ...SERVERS.map((s) => ({ port: 'lan', address: s.ip, mac: s.mac })),
    ],
    ...extra,
  });
}

export interface SnapshotInput {
  name?: string;
  protocol?: 'tcp' | 'udp';
  listen?: string;
  port?: number;
  servers?: { address: string; port: number; weight?: number; draining?: boolean }[];
  plan?: SchedulePlan;
  localAddresses?: string[];
  retired?: ServiceSnapshot['retired'];
  maxConnections?: number;
  version?: number;
  passthrough?: PassthroughSettings;
  synproxy?: boolean;
}

export function snapshot(input: SnapshotInput = {}): ServiceSnapshot {
  const servers: NonNullable<SnapshotInput['servers']> =
    input.servers ?? SERVERS.map((s) => ({ address: s.ip, port: 8080 }));
  const realServers = servers.map((s, index): RealServerView => ({
    index,
    key: `${s.address}:${s.port}`,
    address: s.address,
    port: s.port,
    weight: s.weight ?? 1,
    configuredWeight: s.weight ?? 1,
    health: 'up',
    draining: s.draining ?? false,
  }));
  return {
    name: input.name ?? 'web',
    protocol: input.protocol ?? 'tcp',
    listen: {
      address: input.listen ?? VIP,
      port: input.port ?? 80,
      family: (input.listen ?? VIP).includes(':') ? 6 : 4,
    },
    realServers,
    version: input.version ?? 1,
    plan: input.plan ?? { kind: 'sequence', sequence: realServers.map((_, i) => i) },
    onFailure: 'inhibit',
    drain: { idleCloseMs: 1000, deadlineMs: 10_000 },
    ...(input.maxConnections ? { maxConnections: input.maxConnections } : {}),
    ...(input.passthrough ? { passthrough: input.passthrough } : {}),
    ...(input.synproxy ? { synproxy: true } : {}),
    quorum: { up: true, liveWeight: realServers.length, required: 1 },
    localAddresses: input.localAddresses ?? [LADDR],
    retired: input.retired ?? [],
  };
}

export const add = (...s: ServiceSnapshot[]) => ({ added: s, updated: [], removed: [] });
export const update = (...s: ServiceSnapshot[]) => ({ added: [], updated: s, removed: [] });
export const remove = (...names: string[]) => ({ added: [], updated: [], removed: names });
