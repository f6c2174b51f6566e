import { DataplaneError, ErrorCodes, type DataplaneChange } from '@fulcrum/kernel';
import type { NativeService } from './native.js';
import { expiredServers, toNativeService } from './snapshot.js';

/** Where a change lands: the injection harness or the EAL workers. */
export interface ServiceSink {
  setService(svc: NativeService): number;
  removeService(id: number): number;
  expireServer(id: number, server: string): number;
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

  get names(): string[] {
    return [...this.#ids.keys()];
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
      return { native: toNativeService(s, id), expire: expiredServers(s) };
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
    for (const { native, expire } of converted) {
      sink.setService(native);
      for (const server of expire) sink.expireServer(native.id, server);
    }
    this.#ids = ids;
    this.#listens = listens;
    this.#nextId = next;
  }
}
