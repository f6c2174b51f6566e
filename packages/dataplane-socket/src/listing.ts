/** One row of the connection table, as `ipvsadm -lnc` prints it (and `fulcrum adm -lnc` will). */
export interface ConnectionEntry {
  protocol: 'TCP' | 'UDP';
  /** IPVS's state name; persistence templates are listed with state NONE, as IPVS does. */
  state: string;
  /** Milliseconds until the entry expires if nothing happens (IPVS's `expire` column). */
  expiresInMs: number;
  /** `address:port`; a template's client port is 0. */
  client: string;
  /** The virtual service address, `VIP:port`. */
  virtual: string;
  /** The real server, `address:port`. */
  server: string;
  service: string;
  /** The balancer's side toward the server (FULLNAT local address and port), once connected. */
  local?: string;
  /** True for a persistence template. */
  template?: boolean;
}

/** One real server of a service, as `ipvsadm -ln --stats` shows it. */
export interface ServerStatus {
  server: string;
  /** Effective weight now (0 when the server left the service but still has connections). */
  weight: number;
  /** Still configured in the service. */
  inService: boolean;
  /** Taken out: no new connections, existing ones closing per the drain policy. */
  draining: boolean;
  activeConns: number;
  inactiveConns: number;
  persistentConns: number;
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
  /** The kind of plan being executed (sequence, hash, least-connections). */
  plan: string;
  persistenceTimeoutMs?: number;
  /** Connections holding sockets (what maxConnections bounds). */
  liveConns: number;
  maxConnections?: number;
  /** Removed from the configuration, still finishing its connections. */
  retiring: boolean;
  servers: ServerStatus[];
}
