import { defineDataplane, type DataplaneChange, type ServiceSnapshot } from '@fulcrum/kernel';
import { PlanSimulator, type SimulatedConnection } from './simulator.js';

export interface MemoryService {
  snapshot: ServiceSnapshot;
  simulator: PlanSimulator;
}

/**
 * A dataplane that forwards nothing: it keeps the snapshots the kernel hands it and, per
 * service, a PlanSimulator that picks servers as a real dataplane would. For testing
 * health checks, passthroughs and embedding code without sockets or root.
 */
export function createMemoryDataplane(name = 'memory') {
  const services = new Map<string, MemoryService>();
  const changes: DataplaneChange[] = [];
  const state = { running: false, services, changes };

  const plugin = defineDataplane({
    name,
    kernel: '^0.1.0',
    description: 'records snapshots and simulates scheduling; forwards nothing',
    capabilities: ['tcp', 'udp', 'persistence', 'local-addresses', 'proxy-protocol', 'toa'],
    optionsSchema: { type: 'object', additionalProperties: false, properties: {} },
    create: () => ({
      async start() {
        state.running = true;
      },
      async apply(change) {
        if (!state.running) throw new Error('apply() before start()');
        changes.push(change);
        for (const n of change.removed) services.delete(n);
        for (const s of change.added)
          services.set(s.name, { snapshot: s, simulator: new PlanSimulator(s.plan) });
        for (const s of change.updated) {
          const svc = services.get(s.name);
          if (!svc) throw new Error(`update of unknown service ${s.name}`);
          svc.snapshot = s;
          svc.simulator.swap(s.plan);
        }
      },
      async stop() {
        state.running = false;
        services.clear();
      },
    }),
  });

  /** Opens a simulated connection to `service`; returns the chosen server's key. */
  const connect = (
    service: string,
    sourceAddress?: string,
  ): { server: string; conn: SimulatedConnection } | undefined => {
    const svc = services.get(service);
    if (!svc) throw new Error(`no service ${service} in the memory dataplane`);
    const conn = svc.simulator.connect(sourceAddress ? { sourceAddress } : {});
    return conn && { server: svc.snapshot.realServers[conn.server]!.key, conn };
  };

  return { plugin, state, connect };
}
