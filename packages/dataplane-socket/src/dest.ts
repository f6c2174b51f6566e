import { MemberSet, type SlotOf } from './collections.js';
import type { Conn } from './conn.js';

/** Traffic totals of one real server, as `ipvsadm -ln --stats` shows them. */
export interface DestStats {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

export const zeroStats = (): DestStats => ({ conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 });

/** A connection's place in its server's `conns`. */
const DEST_SLOT: SlotOf<Conn> = {
  get: (c) => c.destSlot,
  set: (c, i) => {
    c.destSlot = i;
  },
};

/** A server being taken out: its connections close when idle, and all at the deadline. */
export interface DrainState {
  sinceMs: number;
  idleCloseMs: number;
  deadlineAt: number;
}

/**
 * A real server of one virtual service, as IPVS's `ip_vs_dest`: it outlives the snapshots
 * that name it, and a server that left the service stays here (index -1, IPVS's "trash")
 * until its last connection ends, so in-flight connections keep their server.
 */
export class Dest {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** Index in the current snapshot's realServers; -1 once the server left the service. */
  index = -1;
  /** Effective weight in the current snapshot (0 when it left). */
  weight = 0;
  /** ActiveConn (ESTABLISHED) and InActConn (every other state), as ipvsadm counts them. */
  active = 0;
  inactive = 0;
  /** Persistence templates that point here (ipvsadm's PersistConn). */
  persistent = 0;
  /** Its connections that are Conn objects (live, or ending)… */
  readonly conns = new MemberSet<Conn>(DEST_SLOT);
  /** …and those lingering in the table's ring (TIME_WAIT, CLOSE), counted in `inactive`. */
  lingering = 0;
  drain: DrainState | undefined;
  readonly stats: DestStats = zeroStats();
  /** What was last handed to the metrics counters, to add only the difference. */
  readonly flushed: DestStats = zeroStats();

  constructor(key: string, address: string, port: number) {
    this.key = key;
    this.address = address;
    this.port = port;
    this.family = address.includes(':') ? 6 : 4;
  }

  /** New connections may be scheduled here. */
  get available(): boolean {
    return this.index >= 0 && this.weight > 0 && this.drain === undefined;
  }
}
