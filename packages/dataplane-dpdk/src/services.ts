import {
  DataplaneError,
  ErrorCodes,
  formatEndpoint,
  type DataplaneChange,
  type ServiceSnapshot,
  type ServiceStatus,
} from '@fulcrum/kernel';
import type { NativeService, NativeServiceStats } from './native.js';
import { drainedServers, expiredServers, toNativeService } from './snapshot.js';

/** Where a change lands: the injection harness or the EAL workers. */
export interface ServiceSink {
  setService(svc: NativeService): number;
  removeService(id: number): number;
  expireServer(id: number, server: string): number;
  drainServer(id: number, server: string, idleCloseMs: number, deadlineMs: number): number;
}

/**
 * Names → native ids, and the kernel's change order (removed, added, updated). Every
 * snapshot is validated and converted before anything reaches native code, so a change
 * that fails leaves the dataplane serving exactly what it served before.
 */
export class ServiceTable {
  #ids = new Map<string, number>();
  /** name → "proto/vip/vport" of every service served */
  #listens = new Map<string, string>();
  #nextId = 1;
  #snapshots = new Map<string, ServiceSnapshot>();

  get names(): string[] {
    return [...this.#ids.keys()];
  }

  /** The native id of a service served. */
  idOf(name: string): number | undefined {
    return this.#ids.get(name);
  }

  apply(change: DataplaneChange, sink: ServiceSink): void {
    for (const name of change.removed)
      if (!this.#ids.has(name))
        throw new DataplaneError(`cannot remove service "${name}": not served`, {
          code: ErrorCodes.SERVICE_NOT_FOUND,
          details: { service: name },
        });
    const ids = new Map(this.#ids);
    for (const name of change.removed) ids.delete(name);
    let next = this.#nextId;
    const converted = [...change.added, ...change.updated].map((s) => {
      let id = ids.get(s.name);
      if (id === undefined) ids.set(s.name, (id = next++));
      return {
        native: toNativeService(s, id),
        expire: expiredServers(s),
        drain: drainedServers(s),
        policy: s.drain,
      };
    });
    const listens = new Map(this.#listens);
    for (const name of change.removed) listens.delete(name);
    for (const { native } of converted)
      listens.set(native.name, `${native.proto}/${native.vip}/${native.vport}`);
    const byListen = new Map<string, string>();
    for (const [name, key] of listens) {
      const other = byListen.get(key);
      if (other)
        throw new DataplaneError(
          `services "${other}" and "${name}" listen on the same address and protocol`,
          {
            details: { services: [other, name] },
          },
        );
      byListen.set(key, name);
    }
    for (const name of change.removed) sink.removeService(this.#ids.get(name)!);
    for (const { native, expire, drain, policy } of converted) {
      sink.setService(native);
      for (const server of expire) sink.expireServer(native.id, server);
      for (const server of drain) sink.drainServer(native.id, server, policy.idleCloseMs, policy.deadlineMs);
    }
    for (const name of change.removed) this.#snapshots.delete(name);
    for (const s of [...change.added, ...change.updated]) this.#snapshots.set(s.name, s);
    this.#ids = ids;
    this.#listens = listens;
    this.#nextId = next;
  }

  /** ipvsadm -ln --stats: the snapshots served, with the native counts of their servers. */
  status(stats: readonly NativeServiceStats[]): ServiceStatus[] {
    const byName = new Map(stats.map((s) => [s.name, s]));
    return [...this.#snapshots.values()].map((s) => {
      const live = byName.get(s.name);
      const counts = new Map(live?.servers.map((d) => [d.server, d]));
      return {
        name: s.name,
        protocol: s.protocol,
        virtual: formatEndpoint(s.listen),
        plan: s.plan.kind,
        liveConns: live?.liveConns ?? 0,
        ...(s.maxConnections ? { maxConnections: s.maxConnections } : {}),
        retiring: false,
        servers: s.realServers.map((r) => {
          const c = counts.get(r.key);
          return {
            server: r.key,
            weight: r.weight,
            inService: true,
            draining: r.draining,
            activeConns: c?.activeConns ?? 0,
            inactiveConns: c?.inactiveConns ?? 0,
            persistentConns: 0,
            conns: c?.conns ?? 0,
            inPkts: c?.inPkts ?? 0,
            outPkts: c?.outPkts ?? 0,
            inBytes: c?.inBytes ?? 0,
            outBytes: c?.outBytes ?? 0,
          };
        }),
      };
    });
  }
}
