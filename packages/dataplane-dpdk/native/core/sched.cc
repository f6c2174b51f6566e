#include "core/sched.h"

namespace fulcrum {

uint32_t plan_hash(const std::vector<HashField>& fields, const HashTuple& t) {
  uint32_t h = 0x811c9dc5u;
  auto mix = [&h](uint8_t b) { h = (h ^ b) * 0x01000193u; };
  for (HashField f : fields) {
    switch (f) {
      case HashField::SourceAddress:
        for (uint8_t i = 0; i < t.source_address_len; i++) mix(t.source_address[i]);
        break;
      case HashField::DestinationAddress:
        for (uint8_t i = 0; i < t.destination_address_len; i++) mix(t.destination_address[i]);
        break;
      case HashField::SourcePort:
        mix(static_cast<uint8_t>(t.source_port >> 8));
        mix(static_cast<uint8_t>(t.source_port));
        break;
      case HashField::DestinationPort:
        mix(static_cast<uint8_t>(t.destination_port >> 8));
        mix(static_cast<uint8_t>(t.destination_port));
        break;
    }
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

// IPVS's formulas (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c): least cost/weight,
// compared by cross-multiplication, first in order on ties, never a weight-0 server.
int32_t pick_least(const Plan& plan, const ServerLoad* loads, size_t n) {
  int32_t best = -1;
  uint64_t best_cost = 0, best_weight = 1;
  for (size_t i = 0; i < n && i < plan.weights.size(); i++) {
    uint32_t w = plan.weights[i];
    if (w == 0) continue;
    const ServerLoad& l = loads[i];
    if (plan.formula == LcFormula::Nq && l.active == 0) return static_cast<int32_t>(i);
    uint64_t cost = (plan.formula == LcFormula::Lc || plan.formula == LcFormula::Wlc)
                        ? static_cast<uint64_t>(l.active) * 256 + l.inactive
                        : static_cast<uint64_t>(l.active) + 1;
    uint64_t weight = plan.formula == LcFormula::Lc ? 1 : w;
    if (best == -1 || cost * best_weight < best_cost * weight) {
      best = static_cast<int32_t>(i);
      best_cost = cost;
      best_weight = weight;
    }
  }
  return best;
}

}  // namespace fulcrum
