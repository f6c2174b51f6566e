import {
  formatEndpoint,
  type ConnectionEntry,
  type Kernel,
  type ServerStatus,
  type ServiceSnapshot,
  type ServiceStatus,
} from '@fulcrum/kernel';

/** Traffic totals since start, as `ipvsadm -Ln --stats` prints them. */
export interface TrafficStats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

/** One real server as the admin API shows it: the kernel's view merged with the dataplane's counters. */
export interface ServerView {
  server: string;
  address: string;
  port: number;
  /** Effective weight: what the dataplane schedules with (0 when down or draining). */
  weight: number;
  configuredWeight: number;
  health: 'up' | 'down';
  /** The last health verdict's reason, when a checker has reported. */
  healthReason?: string;
  draining: boolean;
  sorry: boolean;
  /** Still configured; false for a removed server that is still finishing its connections. */
  inService: boolean;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
  stats: TrafficStats;
}

export interface ServiceView {
  name: string;
  protocol: 'tcp' | 'udp';
  /** `VIP:port`. */
  virtual: string;
  scheduler: string;
  /** Persistence timeout in seconds (ipvsadm's `-p`), when the service is persistent. */
  persistence?: number;
  plan: string;
  version: number;
  onFailure: string;
  quorum: { up: boolean; liveWeight: number; required: number };
  maxConnections?: number;
  liveConns: number;
  /** Removed from the configuration, still finishing its connections (dataplane only). */
  retiring: boolean;
  stats: TrafficStats;
  servers: ServerView[];
}

const zeroStats = (): TrafficStats => ({ conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });

function statsOf(s: ServerStatus | undefined): TrafficStats {
  if (!s) return zeroStats();
  return { conns: s.conns, inPkts: s.inPkts, outPkts: s.outPkts, inBytes: s.inBytes, outBytes: s.outBytes };
}

function addStats(into: TrafficStats, s: TrafficStats): void {
  into.conns += s.conns;
  into.inPkts += s.inPkts;
  into.outPkts += s.outPkts;
  into.inBytes += s.inBytes;
  into.outBytes += s.outBytes;
}

/** What the dataplane reports, by service name; empty when it reports nothing. */
export function dataplaneServices(kernel: Kernel): Map<string, ServiceStatus> {
  const statuses = kernel.dataplane?.services?.() ?? [];
  return new Map(statuses.map((s) => [s.name, s]));
}

/**
 * Merges a kernel snapshot (configured and effective weights, health, drain) with the
 * dataplane's live counters (ActiveConn, InActConn, stats). Servers the dataplane still
 * holds after they left the configuration are listed with `inService: false`.
 */
export function serviceView(
  kernel: Kernel,
  snap: ServiceSnapshot,
  live: ServiceStatus | undefined,
  reasons: ReadonlyMap<string, string>,
): ServiceView {
  const spec = kernel.config?.services.find((s) => s.name === snap.name);
  const counters = new Map((live?.servers ?? []).map((s) => [s.server, s]));
  const stats = zeroStats();
  const servers: ServerView[] = snap.realServers.map((rs) => {
    const c = counters.get(rs.key);
    counters.delete(rs.key);
    const reason = reasons.get(`${snap.name}\0${rs.key}`);
    const s = statsOf(c);
    addStats(stats, s);
    return {
      server: rs.key,
      address: rs.address,
      port: rs.port,
      weight: rs.weight,
      configuredWeight: rs.configuredWeight,
      health: rs.health,
      ...(reason !== undefined ? { healthReason: reason } : {}),
      draining: rs.draining,
      sorry: !!rs.sorry,
      inService: true,
      activeConns: c?.activeConns ?? 0,
      inactiveConns: c?.inactiveConns ?? 0,
      persistentConns: c?.persistentConns ?? 0,
      stats: s,
    };
  });
  for (const c of counters.values()) servers.push(leftover(c, snap.name, reasons, stats));
  return {
    name: snap.name,
    protocol: snap.protocol,
    virtual: formatEndpoint(snap.listen),
    scheduler: spec?.scheduler.name ?? '?',
    ...(snap.persistence ? { persistence: Math.round(snap.persistence.timeoutMs / 1000) } : {}),
    plan: snap.plan.kind,
    version: snap.version,
    onFailure: snap.onFailure,
    quorum: { ...snap.quorum },
    ...(snap.maxConnections !== undefined ? { maxConnections: snap.maxConnections } : {}),
    liveConns: live?.liveConns ?? 0,
    retiring: false,
    stats,
    servers,
  };
}

/** A server (or a whole service) the dataplane still serves but the configuration no longer has. */
function leftover(
  c: ServerStatus,
  service: string,
  reasons: ReadonlyMap<string, string>,
  total: TrafficStats,
): ServerView {
  const i = c.server.lastIndexOf(':');
  const address = c.server.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const s = statsOf(c);
  addStats(total, s);
  const reason = reasons.get(`${service}\0${c.server}`);
  return {
    server: c.server,
    address,
    port: Number(c.server.slice(i + 1)),
    weight: c.weight,
    configuredWeight: 0,
    health: 'up',
    ...(reason !== undefined ? { healthReason: reason } : {}),
    draining: c.draining,
    sorry: false,
    inService: c.inService,
    activeConns: c.activeConns,
    inactiveConns: c.inactiveConns,
    persistentConns: c.persistentConns,
    stats: s,
  };
}

/** Every service: configured ones first (config order), then ones the dataplane is retiring. */
export function allServices(kernel: Kernel, reasons: ReadonlyMap<string, string>): ServiceView[] {
  const live = dataplaneServices(kernel);
  const out = kernel.snapshots().map((snap) => serviceView(kernel, snap, live.get(snap.name), reasons));
  const known = new Set(out.map((s) => s.name));
  for (const s of live.values()) {
    if (known.has(s.name) && !s.retiring) continue;
    const stats = zeroStats();
    out.push({
      name: s.name,
      protocol: s.protocol,
      virtual: s.virtual,
      scheduler: '-',
      ...(s.persistenceTimeoutMs ? { persistence: Math.round(s.persistenceTimeoutMs / 1000) } : {}),
      plan: s.plan,
      version: 0,
      onFailure: '-',
      quorum: { up: true, liveWeight: 0, required: 0 },
      liveConns: s.liveConns,
      retiring: true,
      stats,
      servers: s.servers.map((c) => leftover(c, s.name, reasons, stats)),
    });
  }
  return out;
}

export interface ConnectionFilter {
  service?: string;
  server?: string;
  /** A client address, or address:port. */
  client?: string;
  templates?: boolean;
}

export async function connections(
  kernel: Kernel,
  filter: ConnectionFilter,
): Promise<ConnectionEntry[] | undefined> {
  const dp = kernel.dataplane;
  if (!dp?.connections) return undefined;
  const rows = await dp.connections({ templates: filter.templates !== false });
  return rows.filter(
    (c) =>
      (filter.service === undefined || c.service === filter.service) &&
      (filter.server === undefined || c.server === filter.server) &&
      (filter.client === undefined ||
        c.client === filter.client ||
        c.client.slice(0, c.client.lastIndexOf(':')).replace(/^\[(.*)\]$/, '$1') === filter.client),
  );
}

/** The dataplane's idle timeouts in seconds (`ipvsadm --timeout`), from its applied options. */
export function timeouts(kernel: Kernel): { tcp: number; tcpFin: number; udp: number } | undefined {
  const t = (kernel.config?.dataplane.options as { timeouts?: Record<string, unknown> } | undefined)
    ?.timeouts;
  if (!t) return undefined;
  const s = (v: unknown) => (typeof v === 'number' ? Math.round(v / 1000) : 0);
  return { tcp: s(t.tcp), tcpFin: s(t.tcpFin), udp: s(t.udp) };
}
