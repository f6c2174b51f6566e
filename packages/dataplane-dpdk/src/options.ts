import { durationSchema, type JsonSchema } from '@fulcrum/kernel';
import type { NativeSynproxyConfig } from './native.js';

export interface DpdkPortOptions {
  /** The operator's name for the port (`wan`, `lan`): routes and logs refer to it. */
  name: string;
  /** A DPDK virtual device, e.g. `net_af_xdp0,iface=veth-wan,start_queue=0,queue_count=1`. */
  vdev?: string;
  /** A PCI address to allow (`0000:03:00.0`), for physical ports. */
  pci?: string;
  /** The port's own addresses with their networks, `10.1.0.1/24`: connected routes. */
  addresses: string[];
  /**
   * Descriptors per RX queue (DPVS's `rx descriptor_number`). Default: the driver's preferred
   * size, at least 1,024 (af_xdp prefers 2,048). Fitted to the driver's limits.
   */
  rxDescriptors?: number;
  /** Descriptors per TX queue; default as for `rxDescriptors`. */
  txDescriptors?: number;
}

export interface DpdkRouteOptions {
  to: string;
  via?: string;
  port: string;
}

export interface DpdkNeighborOptions {
  address: string;
  mac: string;
  port: string;
}

/** Options after validation: durations are milliseconds. */
export interface DpdkDataplaneOptions {
  /** EAL arguments, as for dpdk-testpmd before `--`. */
  eal: string[];
  ports: DpdkPortOptions[];
  routes: DpdkRouteOptions[];
  /** Permanent neighbour entries (next hops that do not answer ARP). */
  neighbors: DpdkNeighborOptions[];
  /** Size of the connection table, fixed at start. */
  maxConnections: number;
  /** Range of FULLNAT local ports taken on every local address. */
  localPorts: { min: number; max: number };
  /** TCP header rewrites that are not per service. */
  tcp: {
    /** Lower the MSS option of SYN and SYN-ACK to this, or to the output port's MTU − 40 ('auto'). */
    mssClamp?: number | 'auto';
    /**
     * Drop TCP segments outside the window both ends have told each other (sequence number
     * beyond what the receiver allowed or older than one window, ACK of unsent or long-acked
     * data), counted as `drop_out_of_window`, before they move the connection's state.
     */
    windowCheck: boolean;
    /**
     * Answer a TCP segment for a VIP service or a local address that no connection holds (an
     * expired one, one whose RST was lost) with a RST, as a host with no socket for it does
     * (LVS's director does, through its own stack): at most this many per second per worker,
     * 0 never.
     */
    resetUnknown: number;
  };
  /** Frames each worker's redirect ring holds (replies that arrived on another worker's queue). */
  redirectRing: number;
  /**
   * How the worker loops wait for packets: `busy` polls without pause (DPDK's way, one core
   * per lcore at 100 %); `adaptive` sleeps `sleepUs` between polls once `afterEmptyPolls`
   * polls in a row found nothing (for VMs and shared machines).
   */
  idle: { mode: 'busy' | 'adaptive'; afterEmptyPolls: number; sleepUs: number };
  /**
   * Emit connection:opened / connection:closed on the kernel's bus, batched every 100 ms;
   * at most 8192 per worker per batch (the rest counted as conn_events_dropped).
   */
  connectionEvents: boolean;
  /** Idle timeouts per connection state (DPVS defaults). */
  timeouts: {
    established: number;
    synSent: number;
    synRecv: number;
    finWait: number;
    timeWait: number;
    close: number;
    closeWait: number;
    lastAck: number;
    udp: number;
    udpOneway: number;
  };
  /** SYNPROXY for services with `synproxy: true` (DPVS's ipvs_defs.tcp.synproxy items). */
  synproxy: DpdkSynproxyOptions;
}

export type ReuseState = 'close' | 'timeWait' | 'finWait' | 'closeWait' | 'lastAck';

export interface DpdkSynproxyOptions {
  synackOptions: {
    mss: number;
    ttl: number;
    sack: boolean;
    /** The window scale advertised to clients; absent = not offered. */
    wscale?: number;
    timestamp: boolean;
  };
  maxAckSaved: number;
  rsSynMaxRetry: number;
  ackStormThresh: number;
  connReuseState: Record<ReuseState, boolean>;
  /** Milliseconds between cookie secrets (and time-counter steps). */
  cookieSecretRotate: number;
  retryOtherServer: boolean;
  /** DPVS defer_rs_syn: open the server only when the client's first data arrives. */
  deferRsSyn: boolean;
}

const ms = (def: string, description: string) => durationSchema({ default: def, min: '1ms', description });
const ipv4Cidr = '^(\\d{1,3}\\.){3}\\d{1,3}(/\\d{1,2})?$';
const ipv4 = '^(\\d{1,3}\\.){3}\\d{1,3}$';

export const optionsSchema: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ports'],
  properties: {
    eal: {
      type: 'array',
      items: { type: 'string' },
      default: [
        '--no-pci',
        '--no-huge',
        '-m',
        '512',
        '--no-shconf',
        '--no-telemetry',
        '--file-prefix',
        'fulcrum',
      ],
      description: 'EAL arguments (lcores, memory, file prefix); ports add their own --vdev / -a',
    },
    ports: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'addresses'],
        properties: {
          name: { type: 'string', pattern: '^[a-z][a-z0-9-]*$' },
          vdev: { type: 'string', minLength: 1 },
          pci: { type: 'string', pattern: '^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\\.[0-7]$' },
          addresses: { type: 'array', minItems: 1, items: { type: 'string', pattern: ipv4Cidr } },
          rxDescriptors: {
            type: 'integer',
            minimum: 64,
            maximum: 32768,
            description: "descriptors per RX queue; default: the driver's preferred size, at least 1024",
          },
          txDescriptors: {
            type: 'integer',
            minimum: 64,
            maximum: 32768,
            description: "descriptors per TX queue; default: the driver's preferred size, at least 1024",
          },
        },
      },
    },
    routes: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['to', 'port'],
        properties: {
          to: { type: 'string', pattern: ipv4Cidr },
          via: { type: 'string', pattern: ipv4 },
          port: { type: 'string' },
        },
      },
    },
    neighbors: {
      type: 'array',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['address', 'mac', 'port'],
        properties: {
          address: { type: 'string', pattern: ipv4 },
          mac: { type: 'string', pattern: '^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$' },
          port: { type: 'string' },
        },
      },
    },
    maxConnections: {
      type: 'integer',
      minimum: 1,
      maximum: 16_777_216,
      default: 1_048_576,
      description: 'size of the connection table, allocated at start',
    },
    localPorts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        min: { type: 'integer', minimum: 1, maximum: 65535, default: 1024 },
        max: { type: 'integer', minimum: 1, maximum: 65535, default: 65535 },
      },
    },
    tcp: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mssClamp: {
          oneOf: [{ type: 'integer', minimum: 88, maximum: 65495 }, { const: 'auto' }],
          description:
            "lower the MSS option of SYNs toward the servers and SYN-ACKs toward the clients to this, or to the output port's MTU - 40 ('auto'); off when absent",
        },
        windowCheck: {
          type: 'boolean',
          default: true,
          description:
            'drop TCP segments outside the window both ends advertised (sequence beyond the receiver window or older than one window, ACK of unsent or long-acknowledged data), counted as drop_out_of_window',
        },
        resetUnknown: {
          type: 'integer',
          minimum: 0,
          maximum: 10_000_000,
          default: 1000,
          description:
            'answer a TCP segment (not a RST) for a VIP service or a local address that no connection holds with a RST, at most this many per second per worker; 0 never (rst_unknown_sent, rst_unknown_limited)',
        },
      },
    },
    redirectRing: {
      type: 'integer',
      minimum: 64,
      maximum: 1_048_576,
      default: 4096,
      description: "frames each worker's redirect ring holds (replies received by another worker)",
    },
    connectionEvents: {
      type: 'boolean',
      default: false,
      description:
        'emit connection:opened / connection:closed events (batched every 100 ms, at most 8192 per worker per batch)',
    },
    idle: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        mode: {
          enum: ['busy', 'adaptive'],
          default: 'busy',
          description: 'busy: poll without pause; adaptive: sleep between polls once idle',
        },
        afterEmptyPolls: { type: 'integer', minimum: 1, maximum: 1_000_000, default: 1000 },
        sleepUs: { type: 'integer', minimum: 1, maximum: 100_000, default: 100 },
      },
    },
    timeouts: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        established: ms('90s', 'TCP ESTABLISHED idle timeout'),
        synSent: ms('3s', 'TCP SYN_SENT'),
        synRecv: ms('30s', 'TCP SYN_RECV: the client sent SYN, the handshake has not completed'),
        finWait: ms('7s', 'TCP FIN_WAIT'),
        timeWait: ms('7s', 'TCP TIME_WAIT'),
        close: ms('3s', 'TCP CLOSE (after RST)'),
        closeWait: ms('7s', 'TCP CLOSE_WAIT'),
        lastAck: ms('7s', 'TCP LAST_ACK'),
        udp: ms('300s', 'UDP session that has had replies'),
        udpOneway: ms('20s', 'UDP session that never heard back (a passive-health failure when it expires)'),
      },
    },
    synproxy: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'SYNPROXY, for services with synproxy: true (DPVS names and defaults)',
      properties: {
        synackOptions: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            mss: {
              type: 'integer',
              minimum: 536,
              maximum: 65535,
              default: 1452,
              description: 'MSS the cookie SYN-ACK advertises; also caps the MSS the server is told',
            },
            ttl: {
              type: 'integer',
              minimum: 1,
              maximum: 255,
              default: 63,
              description: 'IP TTL of the cookie SYN-ACK',
            },
            sack: { type: 'boolean', default: true, description: 'offer SACK when the client does' },
            wscale: {
              type: 'integer',
              minimum: 0,
              maximum: 14,
              description:
                "offer window scaling with this shift (absent: off, as DPVS); it must equal the real servers' own",
            },
            timestamp: {
              type: 'boolean',
              default: false,
              description: "offer TCP timestamps (translated for the connection's life)",
            },
          },
        },
        maxAckSaved: {
          type: 'integer',
          minimum: 1,
          maximum: 63,
          default: 3,
          description: 'client packets held while the server is being opened',
        },
        rsSynMaxRetry: {
          type: 'integer',
          minimum: 0,
          maximum: 99,
          default: 3,
          description: 'SYN retransmissions to a silent server',
        },
        ackStormThresh: {
          type: 'integer',
          minimum: 1,
          maximum: 999,
          default: 10,
          description: 'identical pure ACKs from a server passed before the rest are dropped',
        },
        connReuseState: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'states in which a new SYN on the same 4-tuple starts a new connection',
          properties: {
            close: { type: 'boolean', default: true },
            timeWait: { type: 'boolean', default: true },
            finWait: { type: 'boolean', default: false },
            closeWait: { type: 'boolean', default: false },
            lastAck: { type: 'boolean', default: false },
          },
        },
        cookieSecretRotate: durationSchema({
          default: '60s',
          min: '1s',
          description: 'a new cookie secret this often; a cookie is honoured for one to two periods',
        }),
        retryOtherServer: {
          type: 'boolean',
          default: true,
          description:
            'a server that refuses or never answers the SYN is replaced within the handshake instead of resetting the client',
        },
        deferRsSyn: {
          type: 'boolean',
          default: false,
          description:
            'DPVS defer_rs_syn: open the server only once the client sends data (handshake-only clients never reach a server, and cost no state); breaks protocols where the server speaks first',
        },
      },
    },
  },
};

/** The native form of `tcp.mssClamp`: 0 off, -1 auto, else the MSS. */
export function nativeMssClamp(v: number | 'auto' | undefined): number {
  return v === undefined ? 0 : v === 'auto' ? -1 : v;
}

const REUSE_STATE_BITS: Record<ReuseState, number> = {
  finWait: 4,
  timeWait: 5,
  close: 6,
  closeWait: 7,
  lastAck: 8,
};

/** The native form of the synproxy options (SynproxyConfig in native/core/synproxy.h). */
export function synproxyConfig(o: DpdkSynproxyOptions): NativeSynproxyConfig {
  let reuseStates = 0;
  for (const [k, on] of Object.entries(o.connReuseState))
    if (on) reuseStates |= 1 << REUSE_STATE_BITS[k as ReuseState];
  return {
    mss: o.synackOptions.mss,
    ttl: o.synackOptions.ttl,
    sack: o.synackOptions.sack,
    ...(o.synackOptions.wscale !== undefined ? { wscale: o.synackOptions.wscale } : {}),
    timestamp: o.synackOptions.timestamp,
    maxAckSaved: o.maxAckSaved,
    rsSynMaxRetry: o.rsSynMaxRetry,
    ackStormThresh: o.ackStormThresh,
    reuseStates,
    secretRotateMs: o.cookieSecretRotate,
    retryOtherServer: o.retryOtherServer,
    deferRsSyn: o.deferRsSyn,
  };
}

/** The defaults of the schema above, for the harness. */
export const DEFAULT_SYNPROXY: DpdkSynproxyOptions = {
  synackOptions: { mss: 1452, ttl: 63, sack: true, timestamp: false },
  maxAckSaved: 3,
  rsSynMaxRetry: 3,
  ackStormThresh: 10,
  connReuseState: { close: true, timeWait: true, finWait: false, closeWait: false, lastAck: false },
  cookieSecretRotate: 60_000,
  retryOtherServer: true,
  deferRsSyn: false,
};

/** The native order of TCP state timeouts (IPVS states), then UDP ONEWAY, NORMAL. */
export function timeoutTables(t: DpdkDataplaneOptions['timeouts']): { tcp: number[]; udp: number[] } {
  return {
    tcp: [
      2000,
      t.established,
      t.synSent,
      t.synRecv,
      t.finWait,
      t.timeWait,
      t.close,
      t.closeWait,
      t.lastAck,
      120_000,
      t.synRecv,
    ],
    udp: [t.udpOneway, t.udp],
  };
}
