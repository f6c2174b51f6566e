// FULLNAT local addresses and their port pools (DPVS laddr). A port is owned by one
// connection at a time, so (local address, local port) identifies the reply flow.
// With several worker lcores each owns a disjoint slice of every pool: worker w of n takes
// the ports p with p % n == w, so a reply's destination port names the worker that owns
// its connection (the redirect ring and flow steering rely on it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

namespace fulcrum {

class LocalPortPool {
 public:
  LocalPortPool(uint16_t min_port, uint16_t max_port, uint16_t worker = 0, uint16_t workers = 1)
      : min_(min_port), max_(max_port), worker_(worker), workers_(workers ? workers : 1) {}
  // The worker that owns local port `port` when `workers` share the pools.
  static uint16_t owner(uint16_t port, uint16_t workers) { return workers > 1 ? port % workers : 0; }
  // Returns a free port of `addr`, or 0 when every port of that address is taken.
  uint16_t acquire(uint32_t addr);
  void release(uint32_t addr, uint16_t port);
  size_t in_use(uint32_t addr) const;

 private:
  struct Ports {
    std::vector<uint16_t> free;  // a FIFO ring: released ports are reused last (TIME_WAIT on servers)
    size_t head = 0;
    size_t count = 0;
  };
  Ports& ports(uint32_t addr);
  uint16_t min_, max_, worker_, workers_;
  std::unordered_map<uint32_t, Ports> pools_;
};

}  // namespace fulcrum
