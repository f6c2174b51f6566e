import type { Endpoint } from './endpoint.js';
import { formatEndpoint } from './endpoint.js';
import type { SchedulePlan } from './plan.js';

export type Protocol = 'tcp' | 'udp';

/**
 * What happens to a server's existing connections when it fails or is taken out:
 * - `inhibit`: weight 0, established connections keep flowing (keepalived inhibit_on_failure)
 * - `drain`: weight 0, idle connections closed, the rest closed at a deadline
 * - `remove`: the server leaves the service and its connections are expired at once
 */
export type OnFailure = 'inhibit' | 'drain' | 'remove';

/** A plugin as a config names it, after validation: options have their defaults filled in. */
export interface PluginUse {
  name: string;
  options: Record<string, unknown>;
}

export interface RealServerSpec {
  address: string;
  port: number;
  /** Configured weight, 0..65535 (ipvsadm's range). 0 takes no new connections. */
  weight: number;
  /** Taken out gracefully: no new connections, existing ones drained per the service's policy. */
  drain: boolean;
}

/** How connections to a server being taken out end (the LVS "weight 0 keeps them for an hour" fix). */
export interface DrainPolicy {
  /** A draining connection idle for this long is closed cleanly (FIN). */
  idleCloseMs: number;
  /** Whatever is still open this long after draining started is closed. */
  deadlineMs: number;
}

/** A virtual service as configured, normalised (durations in ms, endpoints parsed). */
export interface ServiceSpec {
  name: string;
  protocol: Protocol;
  listen: Endpoint;
  scheduler: PluginUse;
  /** IPVS persistence: a client address returns to the same server while its template lives. */
  persistence?: { timeoutMs: number };
  passthrough?: PluginUse;
  /** DPVS SYNPROXY: SYN cookies answer the client; the server sees only validated handshakes. */
  synproxy?: boolean;
  healthChecks: PluginUse[];
  onFailure: OnFailure;
  drain: DrainPolicy;
  /** Most concurrent connections the service accepts; beyond it new ones are refused and counted. */
  maxConnections?: number;
  /** Live weight needed to serve normally (keepalived `quorum`, default 1). */
  quorum: number;
  /** keepalived `hysteresis`: the quorum is lost below quorum − h and regained at quorum + h. */
  hysteresis: number;
  /** Where new connections go while the quorum is lost (keepalived `sorry_server`). */
  sorryServer?: Endpoint;
  /** Commands run on state changes (keepalived notify_up/notify_down, quorum_up/quorum_down), as argv. */
  notify: NotifySpec;
  /** FULLNAT source addresses toward the servers; empty means the host picks. */
  localAddresses: string[];
  realServers: RealServerSpec[];
}

export interface NotifySpec {
  up?: string[];
  down?: string[];
  quorumUp?: string[];
  quorumDown?: string[];
}

/** Whether a service has enough live weight; see `quorum` and `hysteresis`. */
export interface QuorumState {
  readonly up: boolean;
  readonly liveWeight: number;
  readonly required: number;
}

export interface AdminSpec {
  listen: Endpoint;
  /** File holding the bearer token for write requests (the daemon reads it). */
  tokenFile?: string;
}

/** A whole configuration, validated and normalised. */
export interface FulcrumConfig {
  dataplane: PluginUse;
  admin?: AdminSpec;
  /** Packages to load before resolving names (third-party plugins). */
  plugins: string[];
  services: ServiceSpec[];
}

/** `address:port` (`[v6]:port`): how a real server is named in events, metrics and APIs. */
export function serverKey(server: { address: string; port: number }): string {
  return formatEndpoint(server);
}

export type ServerHealth = 'up' | 'down';

/** A real server as schedulers and dataplanes see it: with its *effective* weight. */
export interface RealServerView {
  readonly index: number;
  readonly key: string;
  readonly address: string;
  readonly port: number;
  /** Effective weight: configured, or set by a health check, or 0 when down or draining. */
  readonly weight: number;
  readonly configuredWeight: number;
  readonly health: ServerHealth;
  /** Set to drain by the operator (config `drain: true` or the API); weight is then 0. */
  readonly draining: boolean;
  /** The service's sorry server (always the last entry); weight 1 only while the quorum is lost. */
  readonly sorry?: boolean;
}

/**
 * A server whose existing connections must change fate in this snapshot: it left the
 * service or went down (per `onFailure`), or the operator set it to drain.
 * - `expire`: close its connections now (RST in packet dataplanes)
 * - `drain`: no new connections; close idle ones after `drain.idleCloseMs`, the rest at `drain.deadlineMs`
 */
export interface RetiredServer {
  readonly server: string;
  readonly action: 'expire' | 'drain';
}

/** The view of one service that a scheduler compiles; immutable. */
export interface ServiceView {
  readonly name: string;
  readonly protocol: Protocol;
  readonly listen: Endpoint;
  readonly realServers: readonly RealServerView[];
}

/** Passthrough settings that a dataplane executes (the plugin's output, JSON-serialisable). */
export interface PassthroughSettings {
  readonly name: string;
  readonly requires: readonly string[];
  readonly settings: Readonly<Record<string, unknown>>;
}

/** Everything a dataplane needs to serve one service; immutable, swapped as a whole. */
export interface ServiceSnapshot extends ServiceView {
  /** Increases on every change of this service. */
  readonly version: number;
  readonly plan: SchedulePlan;
  readonly persistence?: { readonly timeoutMs: number };
  readonly passthrough?: PassthroughSettings;
  /** Present and true when the service asked for SYNPROXY. */
  readonly synproxy?: boolean;
  readonly onFailure: OnFailure;
  readonly drain: Readonly<DrainPolicy>;
  readonly maxConnections?: number;
  readonly quorum: QuorumState;
  readonly localAddresses: readonly string[];
  /** Servers whose connections change fate with this snapshot; acted on once, when received. */
  readonly retired: readonly RetiredServer[];
}

/** One atomic change handed to a dataplane. */
export interface DataplaneChange {
  readonly added: readonly ServiceSnapshot[];
  readonly updated: readonly ServiceSnapshot[];
  readonly removed: readonly string[];
}
