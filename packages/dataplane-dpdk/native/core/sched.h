// Executes the kernel's compiled scheduling plans (packages/kernel/src/plan.ts) natively:
// the same semantics as the kernel's reference PlanExecutor, one executor per worker lcore.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fulcrum/plan-hash.h"

namespace fulcrum {

enum class PlanKind : uint8_t { Sequence = 0, Hash = 1, LeastConnections = 2 };
enum class HashField : uint8_t { SourceAddress = 0, SourcePort = 1, DestinationAddress = 2, DestinationPort = 3 };
enum class LcFormula : uint8_t { Lc = 0, Wlc = 1, Sed = 2, Nq = 3 };

struct Plan {
  PlanKind kind = PlanKind::Sequence;
  std::vector<int32_t> sequence;  // sequence plans
  std::vector<HashField> fields;  // hash plans
  std::vector<int32_t> table;     // hash plans; -1 = no server
  LcFormula formula = LcFormula::Wlc;
  std::vector<uint32_t> weights;  // least-connections plans
};

// The fields a plan may read; addresses are 4 (IPv4) or 16 (IPv6) network-order bytes,
// ports in host order.
using HashTuple = kernel::PlanHashTuple;

// The kernel's planHash, from the header @fulcrum/kernel exports for native dataplanes.
inline uint32_t plan_hash(const std::vector<HashField>& fields, const HashTuple& t) {
  return kernel::plan_hash(fields.data(), fields.size(), t);
}

struct ServerLoad {
  uint32_t active;
  uint32_t inactive;
};

// Picks a server index or -1. `cursor` is the worker's own sequence cursor.
// `load(i)` returns the live counts of server i (least-connections plans).
template <typename LoadFn>
int32_t plan_pick(const Plan& plan, uint32_t& cursor, const HashTuple& t, LoadFn load);

// IPVS's formulas (ip_vs_lc.c, ip_vs_wlc.c, ip_vs_sed.c, ip_vs_nq.c): least cost/weight,
// compared by cross-multiplication, first in order on ties, never a weight-0 server.
template <typename LoadFn>
int32_t pick_least(const Plan& plan, LoadFn load) {
  int32_t best = -1;
  uint64_t best_cost = 0, best_weight = 1;
  for (size_t i = 0; i < plan.weights.size(); i++) {
    uint32_t w = plan.weights[i];
    if (w == 0) continue;
    const ServerLoad l = load(i);
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

template <typename LoadFn>
int32_t plan_pick(const Plan& plan, uint32_t& cursor, const HashTuple& t, LoadFn load) {
  switch (plan.kind) {
    case PlanKind::Sequence: {
      if (plan.sequence.empty()) return -1;
      if (cursor >= plan.sequence.size()) cursor = 0;
      return plan.sequence[cursor++];
    }
    case PlanKind::Hash: {
      if (plan.table.empty()) return -1;
      return plan.table[plan_hash(plan.fields, t) % plan.table.size()];
    }
    case PlanKind::LeastConnections:
      return pick_least(plan, load);
  }
  return -1;
}

}  // namespace fulcrum
