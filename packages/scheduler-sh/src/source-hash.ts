import { resolveUnavailable } from '@fulcrum/kernel';

/** What source hashing needs of a real server; RealServerView has it. */
export interface SourceHashServer {
  /** Effective weight; 0 takes no new connection. */
  readonly weight: number;
  /**
   * Configured weight: a server at weight 0 whose configured weight is > 0 keeps its slots,
   * so a health flap moves only its own keys. (IPVS refills the table by the current weight,
   * which leaves such a server one bucket and shifts every other server's buckets.)
   */
  readonly configuredWeight?: number;
}

export interface SourceHashOptions {
  /** Largest table built; beyond it weights are scaled down, every server keeping a slot. */
  maxTableSize?: number;
  /** Re-point the slots of servers at weight 0 (true) or refuse their keys (false). */
  fallback?: boolean;
}

export const DEFAULT_MAX_TABLE_SIZE = 65536;
export const DEFAULT_FALLBACK = true;

const gcd = (a: number, b: number): number => {
  while (b) [a, b] = [b, a % b];
  return a;
};

/**
 * The source-hashing table, as ip_vs_sh_reassign fills it: the servers in the service's
 * order, each repeated weight / gcd(weights) times. IPVS repeats that cycle over a fixed
 * 256-bucket table, which cuts off weights that add up to more than 256; here the table is
 * one exact cycle (so shares equal weights), scaled down by halving weights when it would
 * exceed `maxTableSize`. A key goes to `table[hash % table.length]`: stable while the
 * membership and weights are, but most keys move when a server joins or leaves (use mh for
 * consistency). No server at weight > 0: an empty table.
 */
export function sourceHashTable(
  servers: readonly SourceHashServer[],
  options: SourceHashOptions = {},
): number[] {
  const maxTableSize = options.maxTableSize ?? DEFAULT_MAX_TABLE_SIZE;
  const fallback = options.fallback ?? DEFAULT_FALLBACK;
  const available = new Uint8Array(servers.length);
  let anyAvailable = false;
  let g = 0;
  const layout = servers.map((s, i) => {
    if (s.weight > 0) {
      available[i] = 1;
      anyAvailable = true;
    }
    const w = s.weight > 0 ? s.weight : (s.configuredWeight ?? 0);
    if (w > 0) g = gcd(w, g);
    return w > 0 ? w : 0;
  });
  if (!anyAvailable) return [];

  let shift = 0;
  let size: number;
  for (;;) {
    size = 0;
    let allOnes = true;
    for (const w of layout) {
      if (w === 0) continue;
      const q = (w / g) >> shift;
      size += q || 1;
      if (q > 1) allOnes = false;
    }
    if (size <= maxTableSize || allOnes) break;
    shift++;
  }

  const table = new Int32Array(size);
  let c = 0;
  layout.forEach((w, i) => {
    if (w === 0) return;
    for (let t = (w / g) >> shift || 1; t > 0; t--) table[c++] = i;
  });
  return resolveUnavailable(table, available, fallback);
}
