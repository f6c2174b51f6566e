/**
 * What a dataplane reports about its live state, for operators (`fulcrum adm -Ln`, `-Lnc`,
 * `--stats`, the admin API). Dataplanes implement `services()` and `connections()` on their
 * instance; both are optional, and must not stall forwarding to answer.
 */

/** One row of the connection table, as `ipvsadm -lnc` prints it. */
export interface ConnectionEntry {
  protocol: 'TCP' | 'UDP';
  /** IPVS's state name (SYN_SENT, ESTABLISHED, FIN_WAIT, …); templates have state NONE. */
  state: string;
  /** Milliseconds until the entry expires if nothing happens (ipvsadm's `expire`). */
  expiresInMs: number;
  /** `address:port` of the client; a persistence template's client port is 0. */
  client: string;
  /** The virtual service, `VIP:port`. */
  virtual: string;
  /** The real server, `address:port`. */
  server: string;
  service: string;
  /** The balancer's address and port toward the server (FULLNAT), once connected. */
  local?: string;
  /** A persistence template. */
  template?: boolean;
}

/** One real server of a service, as `ipvsadm -ln --stats` shows it. */
export interface ServerStatus {
  server: string;
  /** Effective weight now (0 when it left the service but still has connections). */
  weight: number;
  /** Still configured in the service. */
  inService: boolean;
  draining: boolean;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
  /** Connections since start. */
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export interface ServiceStatus {
  name: string;
  protocol: 'tcp' | 'udp';
  virtual: string;
  /** The kind of plan executed (sequence, hash, least-connections). */
  plan: string;
  persistenceTimeoutMs?: number;
  /** Connections holding resources now (what maxConnections bounds). */
  liveConns: number;
  maxConnections?: number;
  /** Removed from the configuration, still finishing its connections. */
  retiring: boolean;
  servers: ServerStatus[];
}

export interface ConnectionQuery {
  /** Include persistence templates (ipvsadm lists them too). */
  templates?: boolean;
}
