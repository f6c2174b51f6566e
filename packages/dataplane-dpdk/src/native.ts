// The only file that loads the addon. Everything else goes through these types.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DpdkErrorCodes, dpdkError } from './errors.js';

/** A service as the native core takes it: validated and converted by snapshot.ts. */
export interface NativeService {
  id: number;
  name: string;
  /** 6 = TCP, 17 = UDP */
  proto: number;
  vip: number;
  vport: number;
  /** 0 = unlimited */
  maxConns: number;
  /** `serving`: weight > 0 in the snapshot (a server back in service ends its drain). */
  dests: { addr: number; port: number; key: string; draining: boolean; serving: boolean }[];
  plan: NativePlan;
  laddrs: number[];
  /** The client's address toward the servers (passthrough toa / proxy-protocol); absent: none. */
  insert?: NativeInsert;
  synproxy: boolean;
}

/** kind 1 TOA, 2 PROXY protocol; TLV bytes as @fulcrum/proxy-protocol encodes them. */
export interface NativeInsert {
  kind: 1 | 2;
  toaPrune: boolean;
  ppVersion: 1 | 2;
  ppCrc32c: boolean;
  ppUniqueId: boolean;
  ppTlvsBefore: Buffer;
  ppTlvsAfter: Buffer;
}

/** SynproxyConfig (native/core/synproxy.h); built by options.ts synproxyConfig. */
export interface NativeSynproxyConfig {
  mss: number;
  ttl: number;
  sack: boolean;
  wscale?: number;
  timestamp: boolean;
  maxAckSaved: number;
  rsSynMaxRetry: number;
  ackStormThresh: number;
  /** 1 << TCP state (IPVS numbering) for each state a new SYN may reuse */
  reuseStates: number;
  secretRotateMs: number;
  retryOtherServer: boolean;
  deferRsSyn: boolean;
}

/** kind 0 sequence, 1 hash, 2 least-connections (fields and formula as indices). */
export interface NativePlan {
  kind: 0 | 1 | 2;
  sequence?: number[];
  fields?: number[];
  table?: number[];
  formula?: number;
  weights?: number[];
}

export interface NativeHarnessConfig {
  connCapacity?: number;
  localPortMin?: number;
  localPortMax?: number;
  /** MSS clamping on SYN and SYN-ACK: 0 off, > 0 that MSS, -1 the output port's MTU − 40. */
  mssClamp?: number;
  /** Drop TCP segments outside the window (default true). */
  tcpWindowCheck?: boolean;
  /** RSTs per second per worker for segments no connection holds (default 1000; 0 never). */
  tcpResetUnknown?: number;
  /** Per IPVS TCP state, in the order of TCP_STATES. */
  tcpTimeoutsMs?: number[];
  /** ONEWAY, NORMAL */
  udpTimeoutsMs?: number[];
  /** Worker pipelines (the harness; the EAL takes one per lcore of `-l`). */
  workers?: number;
  /** Frames each worker's redirect ring holds. */
  redirectRing?: number;
  /** Record connection opened/closed events. */
  connEvents?: boolean;
  /** At most this many per worker between two reads (100 ms on the EAL); the rest are counted. */
  connEventsMax?: number;
  synproxy?: NativeSynproxyConfig;
  /** Harness only (the EAL workers keep the defaults): expire's walk per loop iteration, in empty slots (65,536). */
  expireChunkSlots?: number;
  /** Harness only: what a connection looked at costs more in that chunk (1), and one reset (40). */
  expireConnCost?: number;
  expireResetCost?: number;
}

/**
 * A connection opened or closed (the kernel's connection:opened / connection:closed), or
 * (`failed`) one a server refused or never answered (connection:failed).
 */
export interface NativeConnEvent {
  opened: boolean;
  service: string;
  server: string;
  client: string;
  durationMs: number;
  /** Closed by the balancer: 'drain-idle', 'drain-deadline', 'expire'; failed: 'refused', 'timeout', 'oneway-expired'. */
  reason?: string;
  failed?: boolean;
  /** failed: the handshake moved on to another server (SYNPROXY). */
  retried?: boolean;
}

/** The EAL's own options, besides the pipelines'. */
export interface NativeEalConfig extends NativeHarnessConfig {
  /** Empty polls in a row before the loop sleeps between polls. */
  idlePolls?: number;
  /** Sleep between polls once idle; 0 = busy-poll always. */
  idleSleepUs?: number;
}

export interface NativeSignal {
  service: string;
  server: string;
  ok: boolean;
  reason: string;
}

export interface NativeConnection {
  protocol: 'tcp' | 'udp';
  service: string;
  server: string;
  client: string;
  virtual: string;
  local: string;
  state: string;
  /** Milliseconds until the connection expires if nothing happens. */
  expiresInMs: number;
  /** The worker that owns it. */
  worker: number;
}

export type NativeCounters = Record<string, number>;

/** rte_eth_stats of one port, in configured port order. */
export interface NativePortStats {
  ipackets: number;
  opackets: number;
  ibytes: number;
  obytes: number;
  imissed: number;
  ierrors: number;
  oerrors: number;
  rxNombuf: number;
}

export interface NativeServiceStats {
  name: string;
  liveConns: number;
  servers: {
    server: string;
    activeConns: number;
    inactiveConns: number;
    conns: number;
    inPkts: number;
    outPkts: number;
    inBytes: number;
    outBytes: number;
  }[];
}

export interface NativeHarness {
  addPort(id: number, mac: Buffer, addrs: number[], mtu?: number): number;
  addRoute(net: number, prefix: number, via: number, port: number): number;
  addNeighbor(port: number, ip: number, mac: Buffer): number;
  setService(svc: NativeService): number;
  removeService(id: number): number;
  expireServer(id: number, server: string): number;
  drainServer(id: number, server: string, idleCloseMs: number, deadlineMs: number): number;
  /** Frames sent, each as [port, frame, worker that sent it]. */
  inject(port: number, frame: Buffer, nowMs: number, worker?: number): [number, Buffer, number][];
  burst(worker: number, frames: [number, Buffer][], nowMs: number): [number, Buffer, number][];
  /** Frames expiry sent (SYNPROXY retransmissions) are appended to `out` when given. */
  expire(nowMs: number, out?: [number, Buffer, number][]): number;
  /** Each worker's next loop iteration after a change: what it queued, then a chunk of an expire walk. */
  flush(): [number, Buffer, number][];
  /** Each worker's next loop iteration with nothing received: a chunk of an expire walk. */
  step(): [number, Buffer, number][];
  /** Per worker: an expire walk is under way. */
  expireWalking(): boolean[];
  /** Expires `server` of service `id`, runs `worker`'s walk to its end: nanoseconds per chunk (RSTs discarded). */
  benchExpireWalk(id: number, server: string, worker: number): number[];
  /** Nanoseconds spent processing `frames` `rounds` times (frames ≤ 2048 bytes). */
  bench(frames: [number, Buffer][], rounds: number, nowMs: number): number;
  /** As bench, but received by `worker` in bursts of 32: owner check, redirect ring, owner. */
  benchReceived(
    frames: [number, Buffer][],
    rounds: number,
    nowMs: number,
    worker: number,
    across?: boolean,
  ): number;
  signals(): NativeSignal[];
  counters(): NativeCounters;
  workerCounters(): NativeCounters[];
  connections(nowMs?: number): NativeConnection[];
  services(): NativeServiceStats[];
  connectionEvents(): NativeConnEvent[];
}

export interface NativeBinding {
  Harness: new (config: NativeHarnessConfig) => NativeHarness;
  planHash(fields: number[], src: string, sport: number, dst: string, dport: number): number;
  ealStart(
    args: string[],
    ports: { device: string; addrs: number[]; rxDescriptors?: number; txDescriptors?: number }[],
    config: NativeEalConfig,
    /** 'signals' with NativeSignal[], 'connections' with NativeConnEvent[]. */
    onEvent: (kind: 'signals' | 'connections', payload: unknown[]) => void,
  ): Promise<Buffer[]>;
  ealStop(): void;
  ealSetService(svc: NativeService): number;
  ealRemoveService(id: number): number;
  ealExpireServer(id: number, server: string): number;
  ealDrainServer(id: number, server: string, idleCloseMs: number, deadlineMs: number): number;
  ealAddRoute(net: number, prefix: number, via: number, port: number): number;
  ealAddNeighbor(port: number, ip: number, mac: Buffer): number;
  ealCounters(): NativeCounters | null;
  ealWorkerCounters(): NativeCounters[];
  /** Workers, and per port whether rte_flow steers replies to their owner (and why not). */
  ealInfo(): {
    workers: number;
    /** Lcores in `-l` that run no worker (a port has fewer queue pairs), and why. */
    idleLcores: number;
    idleReason: string;
    /** Per port: replies steered by rte_flow (or why not), and the descriptors per queue. */
    ports: { steering: boolean; reason: string; rxDescriptors: number; txDescriptors: number }[];
    steeringRules: number;
  } | null;
  /** Asks every worker to copy its table out; false when EAL is not running. */
  ealConnectionsRequest(): boolean;
  /** True once every worker has copied its table out (poll it; it never blocks). */
  ealConnectionsReady(): boolean;
  ealConnectionsTake(): { complete: boolean; connections: NativeConnection[] };
  ealServices(): NativeServiceStats[];
  ealPorts(): NativePortStats[];
}

export const TCP_STATES = [
  'NONE',
  'ESTABLISHED',
  'SYN_SENT',
  'SYN_RECV',
  'FIN_WAIT',
  'TIME_WAIT',
  'CLOSE',
  'CLOSE_WAIT',
  'LAST_ACK',
  'LISTEN',
  'SYNACK',
] as const;

const addonPath = fileURLToPath(new URL('../build/Release/fulcrum_dpdk.node', import.meta.url));
const INSTALL = 'apt-get install libdpdk-dev dpdk pkg-config';

function hasLibdpdk(): boolean {
  try {
    execFileSync('pkg-config', ['--exists', 'libdpdk'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let cached: NativeBinding | undefined;
let failure: Error | undefined;

/** Why the addon cannot be used here, or undefined when it can (for tests and diagnostics). */
export function nativeUnavailableReason(): string | undefined {
  try {
    loadNative();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Loads the addon once; throws FULCRUM_DATAPLANE_UNAVAILABLE saying what to install or run. */
export function loadNative(): NativeBinding {
  if (cached) return cached;
  if (failure) throw failure;
  if (!existsSync(addonPath)) {
    failure = hasLibdpdk()
      ? dpdkError(
          DpdkErrorCodes.UNAVAILABLE,
          `the DPDK addon is not built (${addonPath} missing): run "npm run build" at the repository root, or "npm run build:native" in @fulcrum/dataplane-dpdk`,
          { addonPath },
        )
      : dpdkError(
          DpdkErrorCodes.UNAVAILABLE,
          `DPDK is not installed: ${INSTALL} (as root), then rebuild with "npm run build"`,
          { addonPath, install: INSTALL },
        );
    throw failure;
  }
  try {
    cached = createRequire(import.meta.url)(addonPath) as NativeBinding;
    return cached;
  } catch (e) {
    failure = dpdkError(
      DpdkErrorCodes.UNAVAILABLE,
      `the DPDK addon does not load (${(e as Error).message}): is DPDK installed (${INSTALL}) and the addon built for this Node?`,
      { addonPath },
      e,
    );
    throw failure;
  }
}
