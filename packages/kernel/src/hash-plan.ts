/** MurmurHash3's 32-bit finaliser: spreads every input bit over the whole word. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Probes tried per slot before the last resort; enough unless most of the table is down. */
const PROBES = 32;

const probe = (slot: number, k: number, size: number) =>
  fmix32((slot ^ Math.imul(k, 0x9e3779b9)) >>> 0) % size;

/**
 * For hash-plan compilers (sh, mh): resolves the slots of unavailable servers — servers that
 * keep their place in the table's layout (weight 0 now, configured weight > 0: down,
 * inhibited, draining) but must take no new connection. `table` holds server indices or -1;
 * `available[i]` is 1 for weight > 0.
 *
 * Without fallback such a slot becomes -1 and its keys are refused (IPVS without the
 * mh-fallback / sh-fallback flag). With fallback the slot is re-pointed, as IPVS rehashes
 * the key with growing offsets; a dataplane cannot rehash, so this is done per slot here:
 * slot c takes the server of the first slot among probe(c, 1), probe(c, 2), … whose server
 * is available. Probing samples servers in proportion to their slots, so the moved keys
 * spread as the weights say, and a slot moves again only if the server it moved to fails.
 */
export function resolveUnavailable(table: Int32Array, available: Uint8Array, fallback: boolean): number[] {
  const size = table.length;
  const out = new Array<number>(size);
  let availableSlots: number[] | undefined;
  for (let c = 0; c < size; c++) {
    const s = table[c]!;
    if (s < 0 || available[s]) {
      out[c] = s;
      continue;
    }
    if (!fallback) {
      out[c] = -1;
      continue;
    }
    let found = -1;
    for (let k = 1; k <= PROBES && found < 0; k++) {
      const t = table[probe(c, k, size)]!;
      if (t >= 0 && available[t]) found = t;
    }
    if (found < 0) {
      // Most of the table is down: pick among the slots still up, still by a hash of c.
      if (!availableSlots) {
        availableSlots = [];
        for (let d = 0; d < size; d++) if (table[d]! >= 0 && available[table[d]!]) availableSlots.push(d);
      }
      if (availableSlots.length) found = table[availableSlots[probe(c, 0, availableSlots.length)]!]!;
    }
    out[c] = found;
  }
  return out;
}
