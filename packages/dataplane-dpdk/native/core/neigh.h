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
  NeighTable() = default;
  NeighTable(const NeighTable&) = delete;  // the memo points into this table's own entries
  NeighTable& operator=(const NeighTable&) = delete;
  void set(uint16_t port, uint32_t ip, const Mac& mac, bool permanent);
  const Mac* find(uint16_t port, uint32_t ip) const;
  size_t size() const { return entries_.size(); }

  // ARP request rate limit (as Linux's retrans_time and unres_qlen): whether a request for the
  // unresolved `ip` may be sent at `now_ms` — at most one per neighbour per kRetransMs, and at
  // most kMaxUnresolved neighbours awaiting resolution (entries older than kUnresolvedMs are
  // forgotten). Learning the neighbour (set) clears its entry.
  static constexpr uint64_t kRetransMs = 1000;
  static constexpr uint64_t kUnresolvedMs = 3 * kRetransMs;
  static constexpr size_t kMaxUnresolved = 256;
  bool may_request(uint16_t port, uint32_t ip, uint64_t now_ms);
  size_t unresolved() const { return unresolved_.size(); }

 private:
  struct Entry {
    Mac mac;
    bool permanent;
  };
  static uint64_t key(uint16_t port, uint32_t ip) { return (static_cast<uint64_t>(port) << 32) | ip; }
  // Entries are never erased (a MAC that changes is overwritten in place), so a pointer to
  // one stays valid: the last few found are remembered, and a packet toward a known next
  // hop (usually one gateway and a few servers) skips the hash map. Whatever erases an
  // entry must clear memo_.
  struct Memo {
    uint64_t key = ~0ull;  // never a real key (ports are 16 bits)
    const Entry* entry = nullptr;
  };
  static constexpr unsigned kMemo = 8;
  static unsigned memo_slot(uint64_t k) { return static_cast<unsigned>((k * 0x9e3779b97f4a7c15ull) >> 61); }
  std::unordered_map<uint64_t, Entry> entries_;
  mutable Memo memo_[kMemo];
  std::unordered_map<uint64_t, uint64_t> unresolved_;  // key → when the last request went out
};

}  // namespace fulcrum
