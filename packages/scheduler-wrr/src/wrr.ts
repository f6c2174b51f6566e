import { defineScheduler, MAX_PLAN_ENTRIES, type SequencePlan } from '@fulcrum/kernel';

export interface WrrOptions {
  /** Longest sequence compiled exactly; longer cycles are scaled down (see wrrSequence). */
  maxSequenceLength: number;
}

export const DEFAULT_MAX_SEQUENCE_LENGTH = 1 << 20;

const gcd = (a: number, b: number): number => {
  while (b) [a, b] = [b, a % b];
  return a;
};

/**
 * One cycle of IPVS's interleaved weighted round robin (ip_vs_wrr_schedule): with
 * `mw` the largest weight and `di` the gcd of the weights, the scheduler makes mw/di
 * passes over the servers in order, with the required weight `cw` going mw, mw−di, …, di,
 * and picks in each pass every server whose weight is >= cw. Weights 4, 3, 2 give
 * `0 0 1 0 1 2 0 1 2`. Weight-0 servers never appear.
 *
 * The cycle holds Σ weight/di entries. When that exceeds `maxLength`, the quotients
 * weight/di are scaled down proportionally (each server keeps at least one entry) and the
 * IPVS order of the scaled weights is returned, so the plan stays bounded in every dataplane.
 */
export function wrrSequence(weights: readonly number[], maxLength = DEFAULT_MAX_SEQUENCE_LENGTH): number[] {
  let di = 0;
  for (const w of weights) if (w > 0) di = gcd(w, di);
  if (di === 0) return [];
  let quotients = weights.map((w) => (w > 0 ? Math.floor(w / di) : 0));
  let total = 0;
  let live = 0;
  for (const q of quotients) {
    total += q;
    if (q > 0) live++;
  }
  if (total > maxLength) {
    const scale = Math.max(0, maxLength - live) / total;
    quotients = quotients.map((q) => (q > 0 ? Math.max(1, Math.floor(q * scale)) : 0));
    return wrrSequence(quotients, Math.max(maxLength, live));
  }

  // Pass p (required quotient t = mw/di − p) picks, in index order, every server with
  // q >= t; the set only grows as t falls, so it is kept sorted and merged per quotient.
  const byQuotient = new Map<number, number[]>();
  let mq = 0;
  quotients.forEach((q, i) => {
    if (q <= 0) return;
    let list = byQuotient.get(q);
    if (!list) byQuotient.set(q, (list = []));
    list.push(i);
    if (q > mq) mq = q;
  });
  const sequence = new Array<number>(total);
  let k = 0;
  let eligible: number[] = [];
  for (let t = mq; t >= 1; t--) {
    const joining = byQuotient.get(t);
    if (joining) eligible = mergeSorted(eligible, joining);
    for (let e = 0; e < eligible.length; e++) sequence[k++] = eligible[e]!;
  }
  return sequence;
}

function mergeSorted(a: readonly number[], b: readonly number[]): number[] {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(a[i]! < b[j]! ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

export const wrr = defineScheduler<WrrOptions>({
  name: 'wrr',
  kernel: '^0.1.0',
  description: "weighted round robin in IPVS's exact interleaved order (ip_vs_wrr.c)",
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      maxSequenceLength: {
        type: 'integer',
        minimum: 1024,
        maximum: MAX_PLAN_ENTRIES,
        default: DEFAULT_MAX_SEQUENCE_LENGTH,
        description: 'longest cycle compiled exactly; beyond it weights are scaled down proportionally',
      },
    },
  },
  create(_ctx, options) {
    const maxLength = options.maxSequenceLength ?? DEFAULT_MAX_SEQUENCE_LENGTH;
    return {
      compile: (view): SequencePlan => ({
        kind: 'sequence',
        sequence: wrrSequence(
          view.realServers.map((s) => s.weight),
          maxLength,
        ),
      }),
    };
  },
});
