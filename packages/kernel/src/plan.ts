import { isIP } from 'node:net';
import { fmix32 } from './hash-plan.js';

/**
 * Schedulers never pick per connection in JavaScript: they compile a service view into one
 * of these plans, and every dataplane executes the plan natively. Indices refer to
 * `ServiceView.realServers` of the view the plan was compiled from.
 */
export type SchedulePlan = SequencePlan | HashPlan | LeastConnectionsPlan;

/** Each worker walks `sequence` with a cursor of its own, wrapping at the end (rr, wrr). */
export interface SequencePlan {
  kind: 'sequence';
  sequence: readonly number[];
}

export type HashField = 'source-address' | 'source-port' | 'destination-address' | 'destination-port';
export const HASH_FIELDS: readonly HashField[] = [
  'source-address',
  'source-port',
  'destination-address',
  'destination-port',
];

/**
 * `table[planHash(fields of the connection) % table.length]` is the server (sh, dh, mh).
 * An entry of -1 means "no server" for that slot.
 */
export interface HashPlan {
  kind: 'hash';
  fields: readonly HashField[];
  table: readonly number[];
}

/**
 * The dataplane holds live connection counts and picks the server with the least cost,
 * first in order on ties, never a weight-0 server. The formulas are IPVS's:
 * - `lc`:  overhead = active × 256 + inactive, least overhead (ip_vs_lc.c)
 * - `wlc`: least overhead / weight, compared by cross-multiplication (ip_vs_wlc.c)
 * - `sed`: least (active + 1) / weight (ip_vs_sed.c)
 * - `nq`:  the first server with no active connection, else as sed (ip_vs_nq.c)
 */
export interface LeastConnectionsPlan {
  kind: 'least-connections';
  formula: 'lc' | 'wlc' | 'sed' | 'nq';
  weights: readonly number[];
}

export const PLAN_KINDS = ['sequence', 'hash', 'least-connections'] as const;
export const LEAST_CONNECTION_FORMULAS = ['lc', 'wlc', 'sed', 'nq'] as const;
/** Largest table or sequence a plan may carry: bounds memory in every dataplane. */
export const MAX_PLAN_ENTRIES = 1 << 22;

/** The connection fields a plan may read. */
export interface ConnectionTuple {
  sourceAddress: string;
  sourcePort: number;
  destinationAddress: string;
  destinationPort: number;
}

export interface ServerLoad {
  active: number;
  inactive: number;
}

/**
 * Checks a plan against the number of servers in its view; returns the problems found
 * (empty when the plan is well-formed). The kernel refuses a plan with problems.
 */
export function checkPlan(plan: unknown, serverCount: number): string[] {
  const problems: string[] = [];
  const isIndex = (v: unknown, allowNone: boolean) =>
    Number.isInteger(v) && ((v as number) >= 0 || (allowNone && v === -1)) && (v as number) < serverCount;
  const checkIndices = (name: string, list: unknown, allowNone: boolean) => {
    if (!Array.isArray(list)) return problems.push(`${name} must be an array of server indices`);
    if (list.length > MAX_PLAN_ENTRIES)
      problems.push(`${name} has ${list.length} entries, more than ${MAX_PLAN_ENTRIES}`);
    const bad = list.findIndex((v) => !isIndex(v, allowNone));
    if (bad >= 0)
      problems.push(`${name}[${bad}] = ${String(list[bad])} is not a server index in 0..${serverCount - 1}`);
    return 0;
  };
  if (typeof plan !== 'object' || plan === null) return ['a plan must be an object'];
  const p = plan as Record<string, unknown>;
  switch (p.kind) {
    case 'sequence':
      checkIndices('sequence', p.sequence, false);
      break;
    case 'hash':
      checkIndices('table', p.table, true);
      if (!Array.isArray(p.fields) || p.fields.length === 0)
        problems.push('fields must name at least one field');
      else
        for (const f of p.fields)
          if (!HASH_FIELDS.includes(f as HashField)) problems.push(`unknown hash field "${String(f)}"`);
      break;
    case 'least-connections':
      if (!LEAST_CONNECTION_FORMULAS.includes(p.formula as never))
        problems.push(`formula must be one of ${LEAST_CONNECTION_FORMULAS.join(', ')}`);
      if (!Array.isArray(p.weights) || p.weights.length !== serverCount)
        problems.push(`weights must have one entry per server (${serverCount})`);
      else if (p.weights.some((w) => !Number.isInteger(w) || (w as number) < 0))
        problems.push('weights must be integers >= 0');
      break;
    default:
      problems.push(`kind must be one of ${PLAN_KINDS.join(', ')}, got ${JSON.stringify(p.kind)}`);
  }
  return problems;
}

function addressBytes(address: string, out: number[]): void {
  if (isIP(address) === 4) {
    for (const part of address.split('.')) out.push(Number(part));
    return;
  }
  // IPv6: expand "::" and write 16 bytes; an embedded IPv4 tail is two groups.
  let text = address.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text =
      text.slice(0, -v4[1]!.length) +
      ((b[0]! << 8) | b[1]!).toString(16) +
      ':' +
      ((b[2]! << 8) | b[3]!).toString(16);
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  for (const g of groups) {
    const v = parseInt(g, 16);
    out.push(v >> 8, v & 0xff);
  }
}

/**
 * The hash every dataplane computes for hash plans: FNV-1a (32-bit) over the bytes of the
 * plan's fields in order — an address as its 4 or 16 network-order bytes, a port as 2
 * network-order bytes — finished with MurmurHash3's fmix32 so that `% table.length`
 * spreads well for any table size.
 */
export function planHash(fields: readonly HashField[], tuple: ConnectionTuple): number {
  let h = 0x811c9dc5;
  for (const f of fields) {
    if (f === 'source-address') h = hashAddress(h, tuple.sourceAddress);
    else if (f === 'destination-address') h = hashAddress(h, tuple.destinationAddress);
    else {
      const port = f === 'source-port' ? tuple.sourcePort : tuple.destinationPort;
      h = Math.imul(h ^ ((port >> 8) & 0xff), 0x01000193);
      h = Math.imul(h ^ (port & 0xff), 0x01000193);
    }
  }
  return fmix32(h);
}

/** FNV-1a over an address's network-order bytes; dotted IPv4 is read without allocating. */
function hashAddress(h: number, address: string): number {
  let g = h;
  let octet = 0;
  let dots = 0;
  for (let i = 0; i < address.length; i++) {
    const c = address.charCodeAt(i);
    if (c === 46 /* . */) {
      g = Math.imul(g ^ octet, 0x01000193);
      octet = 0;
      dots++;
    } else if (c >= 48 && c <= 57) octet = octet * 10 + (c - 48);
    else {
      dots = -1; // not plain dotted IPv4 (IPv6, or IPv4-mapped IPv6): the general path
      break;
    }
  }
  if (dots === 3) return Math.imul(g ^ octet, 0x01000193);
  const bytes: number[] = [];
  addressBytes(address, bytes);
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return h;
}

/**
 * The reference executor of plans: the semantics the socket dataplane uses directly and
 * the native dataplanes reproduce. One executor is one worker: it owns its sequence cursor.
 * `pick` returns a server index, or -1 when the plan schedules nothing.
 */
export class PlanExecutor {
  #plan: SchedulePlan;
  #cursor = 0;

  constructor(plan: SchedulePlan) {
    this.#plan = plan;
  }

  get plan(): SchedulePlan {
    return this.#plan;
  }

  /** Swaps the plan; a sequence starts again from its beginning (IPVS resets on update). */
  swap(plan: SchedulePlan): void {
    this.#plan = plan;
    this.#cursor = 0;
  }

  pick(tuple: ConnectionTuple, load: (index: number) => ServerLoad = noLoad): number {
    const plan = this.#plan;
    switch (plan.kind) {
      case 'sequence': {
        const seq = plan.sequence;
        if (seq.length === 0) return -1;
        if (this.#cursor >= seq.length) this.#cursor = 0;
        return seq[this.#cursor++]!;
      }
      case 'hash': {
        if (plan.table.length === 0) return -1;
        return plan.table[planHash(plan.fields, tuple) % plan.table.length]!;
      }
      case 'least-connections':
        return pickLeast(plan, load);
    }
  }
}

const noLoad = (): ServerLoad => ({ active: 0, inactive: 0 });

function pickLeast(plan: LeastConnectionsPlan, load: (index: number) => ServerLoad): number {
  const { weights, formula } = plan;
  let best = -1;
  let bestCost = 0;
  let bestWeight = 1;
  for (let i = 0; i < weights.length; i++) {
    const w = weights[i]!;
    if (w <= 0) continue;
    const l = load(i);
    if (formula === 'nq' && l.active === 0) return i;
    const cost = formula === 'lc' || formula === 'wlc' ? l.active * 256 + l.inactive : l.active + 1;
    const weight = formula === 'lc' ? 1 : w;
    // cost/weight < bestCost/bestWeight, compared without division as IPVS does.
    if (best === -1 || cost * bestWeight < bestCost * weight) {
      best = i;
      bestCost = cost;
      bestWeight = weight;
    }
  }
  return best;
}
