import { PlanExecutor, type ConnectionTuple, type SchedulePlan, type ServerLoad } from '@fulcrum/kernel';

export interface SimulatedConnection {
  readonly id: number;
  readonly server: number;
  readonly tuple: ConnectionTuple;
}

/**
 * Acts like one dataplane worker executing a plan: picks servers with the kernel's
 * reference PlanExecutor and keeps the live connection counts (ActiveConn / InActConn)
 * that least-connections plans read. For plugin authors' tests and for benchmarks.
 */
export class PlanSimulator {
  readonly #executor: PlanExecutor;
  #active: number[] = [];
  #inactive: number[] = [];
  #open = new Map<number, SimulatedConnection & { established: boolean }>();
  #nextId = 1;
  #nextPort = 1024;

  constructor(plan: SchedulePlan) {
    this.#executor = new PlanExecutor(plan);
  }

  /** Swaps the plan (as on recompilation); open connections keep their server. */
  swap(plan: SchedulePlan): void {
    this.#executor.swap(plan);
  }

  load(index: number): ServerLoad {
    return { active: this.#active[index] ?? 0, inactive: this.#inactive[index] ?? 0 };
  }

  /** Opens a connection (ESTABLISHED, counted active); undefined when nothing is schedulable. */
  connect(tuple: Partial<ConnectionTuple> = {}): SimulatedConnection | undefined {
    const full = this.tuple(tuple);
    const server = this.#executor.pick(full, (i) => this.load(i));
    if (server < 0) return undefined;
    const conn = { id: this.#nextId++, server, tuple: full, established: true };
    this.#open.set(conn.id, conn);
    this.#active[server] = (this.#active[server] ?? 0) + 1;
    return conn;
  }

  /** Moves a connection to an inactive state (FIN_WAIT, TIME_WAIT…): it counts as InActConn. */
  deactivate(conn: SimulatedConnection): void {
    const c = this.#open.get(conn.id);
    if (!c || !c.established) return;
    c.established = false;
    this.#active[c.server]!--;
    this.#inactive[c.server] = (this.#inactive[c.server] ?? 0) + 1;
  }

  close(conn: SimulatedConnection): void {
    const c = this.#open.get(conn.id);
    if (!c) return;
    this.#open.delete(conn.id);
    if (c.established) this.#active[c.server]!--;
    else this.#inactive[c.server]!--;
  }

  get openConnections(): number {
    return this.#open.size;
  }

  /**
   * Picks `count` servers for fresh tuples (distinct source addresses and ports) without
   * keeping connections open, and returns how many picks each server got.
   */
  distribution(count: number, serverCount: number): number[] {
    const counts = new Array<number>(serverCount).fill(0);
    for (let i = 0; i < count; i++) {
      const s = this.#executor.pick(this.tuple({ sourceAddress: syntheticAddress(i) }), (j) => this.load(j));
      if (s >= 0) counts[s]!++;
    }
    return counts;
  }

  /** A full tuple from a partial one, with a fresh source port. */
  tuple(t: Partial<ConnectionTuple> = {}): ConnectionTuple {
    const port = this.#nextPort;
    this.#nextPort = this.#nextPort >= 65535 ? 1024 : this.#nextPort + 1;
    return {
      sourceAddress: t.sourceAddress ?? '192.0.2.1',
      sourcePort: t.sourcePort ?? port,
      destinationAddress: t.destinationAddress ?? '198.51.100.1',
      destinationPort: t.destinationPort ?? 80,
    };
  }
}

/** The i-th address of 10.0.0.0/8: distinct client addresses for simulations. */
export function syntheticAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}
