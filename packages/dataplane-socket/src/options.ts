import { durationSchema, type JsonSchema } from '@fulcrum/kernel';

/** The socket dataplane's options after validation: durations are milliseconds. */
export interface SocketDataplaneOptions {
  /** Idle timeouts per connection state, as `ipvsadm --set tcp tcpfin udp` plus the states it does not set. */
  timeouts: {
    /** ESTABLISHED TCP connection idle this long is closed. */
    tcp: number;
    /** FIN_WAIT / CLOSE_WAIT (half-closed) connection idle this long is closed. */
    tcpFin: number;
    /** UDP session that has had replies, idle this long, is forgotten. */
    udp: number;
    /** UDP session that never heard back (ONEWAY) expires after this; a passive-health failure. */
    udpOneway: number;
    /** How long a closed TCP connection stays listed (TIME_WAIT / CLOSE) and counted as inactive. */
    timeWait: number;
  };
  /** SYN_SENT: a connect to a real server that has not completed by then fails (and is retried). */
  connectTimeout: number;
  /**
   * When set: a server that has received client bytes but sent none back within this time
   * is treated as failed (the "accepts and never answers" server) and the connection is
   * retried on another server while the replay buffer still holds what the client sent.
   */
  responseTimeout?: number;
  /** Further servers tried, per connection, when a server fails before any byte came back. */
  retries: number;
  /** Client bytes kept per connection until the server's first byte, to replay on a retry. */
  retryBufferBytes: number;
  /** Resolution of every idle timer: how often the connection table is swept. */
  sweepInterval: number;
  /** listen(2) backlog of each TCP listener. */
  backlog: number;
  /** TCP_NODELAY on both sides: each relayed read is sent at once (nginx stream's default). */
  noDelay: boolean;
  /**
   * Soft stop (HAProxy's soft-stop, nginx's graceful quit): on stop, listeners close at once
   * and established TCP connections get this long to finish; what is left is then reset.
   * 0 (the default) resets them at once.
   */
  stopGrace: number;
  /**
   * Who moves the bytes of an established TCP connection: `native`, the addon's relay
   * threads (epoll, one per core); `js`, Node streams on the event loop; `auto` (the
   * default), native when the addon is built and loads, else js.
   */
  relay: 'auto' | 'native' | 'js';
  /** Native relay threads; 0 (the default): one per core. */
  relayThreads: number;
  /**
   * The native relay moves bytes with splice(2) through a pipe per direction instead of a
   * buffer, once a read in that direction filled the 64 KiB buffer (a bulk transfer; short
   * exchanges cost less copied than piped).
   */
  relaySplice: boolean;
  /**
   * With the native relay: its threads also accept clients and connect to servers (the
   * decisions stay here), so a connection never gets a net.Socket. Not with responseTimeout,
   * which needs the event loop to watch the server's first byte.
   */
  relayAccept: boolean;
  /**
   * Native accept: which relay thread relays an accepted client. `round-robin` spreads them
   * over the threads whichever accepted them (EPOLLEXCLUSIVE tends to wake the same thread);
   * `accepting-thread` keeps each on the thread that accepted it, with no hand-over.
   */
  relayAcceptSpread: 'round-robin' | 'accepting-thread';
  /**
   * With native accept: the relay threads execute sequence and hash plans themselves (pick
   * the server and connect at accept, this side told afterwards); false: every accepted
   * client waits for the event loop to schedule it.
   */
  relayPlans: boolean;
}

const ms = (def: string, min = '10ms', description?: string) =>
  durationSchema({ default: def, min, ...(description ? { description } : {}) });

export const optionsSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        tcp: ms('15m', '10ms', 'idle timeout of an ESTABLISHED TCP connection (ipvsadm --set tcp)'),
        tcpFin: ms('2m', '10ms', 'idle timeout of a half-closed TCP connection (ipvsadm --set tcpfin)'),
        udp: ms('5m', '10ms', 'idle timeout of a UDP session that has had replies (ipvsadm --set udp)'),
        udpOneway: ms('60s', '10ms', 'lifetime of a UDP session that never heard back (DPVS oneway)'),
        timeWait: ms('10s', '0ms', 'how long a closed TCP connection stays in the table'),
      },
    },
    connectTimeout: ms('5s', '10ms', 'connect to a real server (SYN_SENT) must complete within this'),
    responseTimeout: durationSchema({
      min: '10ms',
      description: 'a server that got client bytes and answered nothing within this is failed and retried',
    }),
    retries: {
      type: 'integer',
      minimum: 0,
      maximum: 32,
      default: 2,
      description: 'other servers tried when a server fails before any byte came back',
    },
    retryBufferBytes: {
      type: 'integer',
      minimum: 0,
      maximum: 16 * 1024 * 1024,
      default: 65536,
      description: 'client bytes kept until the first server byte, to replay on a retry',
    },
    sweepInterval: durationSchema({
      default: '1s',
      min: '5ms',
      max: '10s',
      description: 'how often timeouts are checked',
    }),
    backlog: { type: 'integer', minimum: 1, maximum: 65535, default: 511, description: 'listen(2) backlog' },
    noDelay: { type: 'boolean', default: true, description: 'TCP_NODELAY toward clients and servers' },
    stopGrace: durationSchema({
      default: 0,
      max: '1h',
      description: 'on stop, how long established TCP connections may finish after listeners close',
    }),
    relay: {
      enum: ['auto', 'native', 'js'],
      default: 'auto',
      description:
        'who relays established TCP connections: the native relay threads, Node streams, or native when built',
    },
    relayThreads: {
      type: 'integer',
      minimum: 0,
      maximum: 256,
      default: 0,
      description: 'native relay threads (0: one per core)',
    },
    relayAccept: {
      type: 'boolean',
      default: true,
      description: 'native relay: its threads also accept and connect (not with responseTimeout)',
    },
    relayAcceptSpread: {
      enum: ['round-robin', 'accepting-thread'],
      default: 'round-robin',
      description:
        'native accept: spread accepted clients over the relay threads, or keep each on the thread that accepted it',
    },
    relaySplice: {
      type: 'boolean',
      default: true,
      description: 'native relay: splice(2) through pipes instead of a buffer, for bulk transfers',
    },
    relayPlans: {
      type: 'boolean',
      default: true,
      description:
        'native accept: the relay threads pick the server of sequence and hash plans at accept (false: the event loop schedules every client)',
    },
  },
};
