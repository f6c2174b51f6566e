#include "core/neigh.h"

#include <iterator>

namespace fulcrum {

void NeighTable::set(uint16_t port, uint32_t ip, const Mac& mac, bool permanent) {
  auto it = entries_.find(key(port, ip));
  if (it != entries_.end() && it->second.permanent && !permanent) return;
  entries_[key(port, ip)] = Entry{mac, permanent};
  unresolved_.erase(key(port, ip));
}

bool NeighTable::may_request(uint16_t port, uint32_t ip, uint64_t now_ms) {
  auto it = unresolved_.find(key(port, ip));
  if (it != unresolved_.end()) {
    if (now_ms - it->second < kRetransMs) return false;
    it->second = now_ms;
    return true;
  }
  if (unresolved_.size() >= kMaxUnresolved) {
    for (auto i = unresolved_.begin(); i != unresolved_.end();) {
      i = now_ms - i->second >= kUnresolvedMs ? unresolved_.erase(i) : std::next(i);
    }
    if (unresolved_.size() >= kMaxUnresolved) return false;
  }
  unresolved_.emplace(key(port, ip), now_ms);
  return true;
}

const Mac* NeighTable::find(uint16_t port, uint32_t ip) const {
  const uint64_t k = key(port, ip);
  Memo& m = memo_[memo_slot(k)];
  if (m.key == k) return &m.entry->mac;
  auto it = entries_.find(k);
  if (it == entries_.end()) return nullptr;  // misses are not remembered: set() needs no memo upkeep
  m = Memo{k, &it->second};
  return &it->second.mac;
}

}  // namespace fulcrum
