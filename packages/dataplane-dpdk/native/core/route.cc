#include "core/route.h"

#include <algorithm>

namespace fulcrum {

void RouteTable::add(const Route& r) {
  Route n = r;
  n.net &= mask(r.prefix);
  auto pos = std::find_if(routes_.begin(), routes_.end(), [&](const Route& x) { return x.prefix < n.prefix; });
  routes_.insert(pos, n);
}

const Route* RouteTable::lookup(uint32_t dst) const {
  for (const Route& r : routes_)
    if ((dst & mask(r.prefix)) == r.net) return &r;
  return nullptr;
}

}  // namespace fulcrum
