import { aggregateHealth } from './health.js';
import type { HealthVerdict } from './plugin.js';
import {
  serverKey,
  type QuorumState,
  type RealServerView,
  type ServiceSpec,
  type ServiceView,
} from './service.js';

/** server key → checker label → last verdict */
export type Verdicts = ReadonlyMap<string, ReadonlyMap<string, HealthVerdict>>;

/**
 * keepalived's quorum with hysteresis (check/ipwrapper.c): the quorum is lost when the
 * weight of live servers falls below `quorum − hysteresis`, and regained when it reaches
 * `quorum + hysteresis`; the first evaluation has no hysteresis.
 */
export function nextQuorum(
  spec: ServiceSpec,
  liveWeight: number,
  previous: QuorumState | undefined,
): QuorumState {
  const required = spec.quorum;
  const up = previous
    ? previous.up
      ? liveWeight >= required - spec.hysteresis
      : liveWeight >= required + spec.hysteresis
    : liveWeight >= required;
  return { up, liveWeight, required };
}

/**
 * The view a scheduler compiles: each real server with its effective weight (configured,
 * or a checker's dynamic weight; 0 when down or draining). With a sorry server, it is the
 * last entry: weight 1 while the quorum is lost (every other server at 0), else 0.
 */
export function buildView(
  spec: ServiceSpec,
  verdicts: Verdicts,
  previousQuorum: QuorumState | undefined,
): { view: ServiceView; quorum: QuorumState } {
  const servers = spec.realServers.map((rs) => {
    const key = serverKey(rs);
    const agg = aggregateHealth(rs.weight, verdicts.get(key) ?? new Map());
    return { rs, key, health: agg.health, weight: rs.drain ? 0 : agg.weight };
  });
  const live = servers.reduce((sum, s) => sum + (s.health === 'up' ? s.weight : 0), 0);
  const quorum = nextQuorum(spec, live, previousQuorum);
  const sorry = spec.sorryServer !== undefined && !quorum.up;
  const realServers: RealServerView[] = servers.map((s, index) =>
    Object.freeze({
      index,
      key: s.key,
      address: s.rs.address,
      port: s.rs.port,
      weight: sorry ? 0 : s.weight,
      configuredWeight: s.rs.weight,
      health: s.health,
      draining: s.rs.drain,
    }),
  );
  if (spec.sorryServer) {
    const { address, port } = spec.sorryServer;
    realServers.push(
      Object.freeze({
        index: realServers.length,
        key: serverKey({ address, port }),
        address,
        port,
        weight: sorry ? 1 : 0,
        configuredWeight: 1,
        health: 'up' as const,
        draining: false,
        sorry: true,
      }),
    );
  }
  const view: ServiceView = Object.freeze({
    name: spec.name,
    protocol: spec.protocol,
    listen: spec.listen,
    realServers: Object.freeze(realServers),
  });
  return { view, quorum: Object.freeze(quorum) };
}
