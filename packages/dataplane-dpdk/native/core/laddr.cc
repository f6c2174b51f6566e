#include "core/laddr.h"

namespace fulcrum {

LocalPortPool::Ports& LocalPortPool::ports(uint32_t addr) {
  auto it = pools_.find(addr);
  if (it != pools_.end()) return it->second;
  Ports& p = pools_[addr];
  for (uint32_t port = min_; port <= max_; port++)
    if (owner(static_cast<uint16_t>(port), workers_) == worker_) p.free.push_back(static_cast<uint16_t>(port));
  p.count = p.free.size();
  return p;
}

uint16_t LocalPortPool::acquire(uint32_t addr) {
  Ports& p = ports(addr);
  if (p.count == 0) return 0;
  uint16_t port = p.free[p.head];
  p.head = (p.head + 1) % p.free.size();
  p.count--;
  return port;
}

void LocalPortPool::release(uint32_t addr, uint16_t port) {
  auto it = pools_.find(addr);
  if (it == pools_.end() || port < min_ || port > max_ || owner(port, workers_) != worker_) return;
  Ports& p = it->second;
  if (p.count >= p.free.size()) return;
  p.free[(p.head + p.count) % p.free.size()] = port;
  p.count++;
}

size_t LocalPortPool::in_use(uint32_t addr) const {
  auto it = pools_.find(addr);
  return it == pools_.end() ? 0 : it->second.free.size() - it->second.count;
}

}  // namespace fulcrum
