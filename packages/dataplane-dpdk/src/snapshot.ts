import {
  checkPlan,
  ErrorCodes,
  DataplaneError,
  HASH_FIELDS,
  LEAST_CONNECTION_FORMULAS,
  type SchedulePlan,
  type ServiceSnapshot,
} from '@fulcrum/kernel';
import { isIP } from 'node:net';
import { DpdkErrorCodes, dpdkError } from './errors.js';
import { toNativeInsert } from './insert.js';
import { ipv4ToNumber } from './ipv4.js';
import type { NativePlan, NativeService } from './native.js';

/**
 * Checks a snapshot against what this dataplane serves and converts it for the native
 * core. Everything is validated here, so native code only reads (sharp's way).
 */
export function toNativeService(s: ServiceSnapshot, id: number): NativeService {
  const where = { service: s.name };
  if (s.listen.family !== 4)
    throw dpdkError(
      DpdkErrorCodes.UNSUPPORTED,
      `service "${s.name}": IPv6 VIPs are not supported yet by the dpdk dataplane`,
      where,
    );
  if (s.localAddresses.length === 0)
    throw dpdkError(
      DpdkErrorCodes.UNSUPPORTED,
      `service "${s.name}": FULLNAT needs localAddresses (source addresses toward the servers)`,
      where,
    );
  for (const a of s.localAddresses)
    if (isIP(a) !== 4)
      throw dpdkError(
        DpdkErrorCodes.UNSUPPORTED,
        `service "${s.name}": local address ${a} is not IPv4`,
        where,
      );
  for (const r of s.realServers)
    if (isIP(r.address) !== 4)
      throw dpdkError(
        DpdkErrorCodes.UNSUPPORTED,
        `service "${s.name}": real server ${r.key} is not IPv4`,
        where,
      );
  const problems = checkPlan(s.plan, s.realServers.length);
  if (problems.length)
    throw new DataplaneError(`service "${s.name}": invalid plan: ${problems.join('; ')}`, {
      code: ErrorCodes.PLAN_INVALID,
      details: { ...where, problems },
    });
  const insert = toNativeInsert(s);
  const draining = new Set(s.retired.filter((r) => r.action === 'drain').map((r) => r.server));
  return {
    id,
    name: s.name,
    proto: s.protocol === 'tcp' ? 6 : 17,
    vip: ipv4ToNumber(s.listen.address),
    vport: s.listen.port,
    maxConns: s.maxConnections ?? 0,
    dests: s.realServers.map((r) => ({
      addr: ipv4ToNumber(r.address),
      port: r.port,
      key: r.key,
      draining: r.draining || draining.has(r.key),
      serving: r.weight > 0 && !r.draining && !draining.has(r.key),
    })),
    plan: toNativePlan(s.plan),
    laddrs: s.localAddresses.map(ipv4ToNumber),
    ...(insert ? { insert } : {}),
    synproxy: s.synproxy === true && s.protocol === 'tcp',
  };
}

export function toNativePlan(plan: SchedulePlan): NativePlan {
  switch (plan.kind) {
    case 'sequence':
      return { kind: 0, sequence: [...plan.sequence] };
    case 'hash':
      return { kind: 1, fields: plan.fields.map((f) => HASH_FIELDS.indexOf(f)), table: [...plan.table] };
    case 'least-connections':
      return {
        kind: 2,
        formula: LEAST_CONNECTION_FORMULAS.indexOf(plan.formula),
        weights: [...plan.weights],
      };
  }
}

/** Servers whose connections end now (`retired` with action expire). */
export function expiredServers(s: ServiceSnapshot): string[] {
  return s.retired.filter((r) => r.action === 'expire').map((r) => r.server);
}

/** Servers whose connections drain from now on (`retired` with action drain). */
export function drainedServers(s: ServiceSnapshot): string[] {
  return s.retired.filter((r) => r.action === 'drain').map((r) => r.server);
}
