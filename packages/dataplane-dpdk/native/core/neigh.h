// The neighbour table (DPVS neigh): IPv4 → MAC per port, from static entries and from the
// ARP packets seen on the port's connected networks (requests and replies, as Linux gleans).
#pragma once
#include <cstddef>
#include <array>
#include <cstdint>
#include <unordered_map>

namespace fulcrum {

using Mac = std::array<uint8_t, 6>;

class NeighTable {
 public:
  void set(uint16_t port, uint32_t ip, const Mac& mac, bool permanent);
  const Mac* find(uint16_t port, uint32_t ip) const;
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    Mac mac;
    bool permanent;
  };
  static uint64_t key(uint16_t port, uint32_t ip) { return (static_cast<uint64_t>(port) << 32) | ip; }
  std::unordered_map<uint64_t, Entry> entries_;
};

}  // namespace fulcrum
