// The static route table (DPVS route): connected networks of the ports plus gateways,
// longest prefix first. Small tables, scanned in order of decreasing prefix length.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fulcrum {

struct Route {
  uint32_t net;  // host order
  uint8_t prefix;
  uint32_t via;  // 0 = connected (the destination itself is the next hop)
  uint16_t port;
};

class RouteTable {
 public:
  void add(const Route& r);
  // The route to `dst`, or nullptr.
  const Route* lookup(uint32_t dst) const;
  static uint32_t mask(uint8_t prefix) { return prefix == 0 ? 0 : ~0u << (32 - prefix); }

 private:
  std::vector<Route> routes_;
};

}  // namespace fulcrum
