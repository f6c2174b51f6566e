#include "core/neigh.h"

namespace fulcrum {

void NeighTable::set(uint16_t port, uint32_t ip, const Mac& mac, bool permanent) {
  auto it = entries_.find(key(port, ip));
  if (it != entries_.end() && it->second.permanent && !permanent) return;
  entries_[key(port, ip)] = Entry{mac, permanent};
}

const Mac* NeighTable::find(uint16_t port, uint32_t ip) const {
  auto it = entries_.find(key(port, ip));
  return it == entries_.end() ? nullptr : &it->second.mac;
}

}  // namespace fulcrum
