// Flow steering (DPVS's FDIR on local-address port ranges, here with rte_flow): on a port
// that accepts the rules, a server's reply to local address A and port p is put by the NIC
// on the RX queue of worker p % n, the worker that owns its connection, so it never needs
// the redirect ring. The rule matches `p & (n - 1)`, so it needs n a power of two. Ports
// that refuse the rule (af_packet, af_xdp and the other software PMDs) rely on the ring;
// a frame the NIC did steer passes the owner check and is processed where it arrived.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_set>
#include <vector>

namespace fulcrum {

class Steering {
 public:
  // On the EAL thread, ports started, before the workers run: which ports accept the rule.
  void probe(const std::vector<uint16_t>& ports, uint16_t workers);
  // Per port: rules are installed there.
  const std::vector<bool>& enabled() const { return enabled_; }
  // Why a port does not steer (the PMD's message), per port; empty when it does.
  const std::vector<std::string>& reasons() const { return reasons_; }
  // On the control thread: rules for a new local address (TCP and UDP, every worker) on
  // every port that steers. Returns the rules created; a rule the port refuses is left to
  // the ring. Addresses are never unsteered: replies to a removed one still come.
  unsigned add_local_address(uint32_t addr);

 private:
  std::vector<uint16_t> ports_;
  uint16_t workers_ = 1;
  std::vector<bool> enabled_;
  std::vector<std::string> reasons_;
  std::unordered_set<uint32_t> steered_;
};

}  // namespace fulcrum
