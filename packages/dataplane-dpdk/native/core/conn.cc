#include "core/conn.h"

#include <sys/mman.h>

#include <cstdint>
#include <stdexcept>

namespace fulcrum {

namespace {
constexpr uint8_t sNO = kTcpNone, sES = kTcpEstablished, sSS = kTcpSynSent, sSR = kTcpSynRecv,
                  sFW = kTcpFinWait, sTW = kTcpTimeWait, sCL = kTcpClose, sCW = kTcpCloseWait,
                  sLA = kTcpLastAck, sLI = kTcpListen, sSA = kTcpSynAck;
// ip_vs_proto_tcp.c tcp_states[]: INPUT (from the client) then OUTPUT (from the server);
// rows syn, fin, ack, rst; columns the current state.
constexpr uint8_t kTable[2][4][kTcpStateCount] = {
    {
        {sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR},
        {sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW},
        {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES},
        {sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR},
    },
    {
        {sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR},
        {sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW},
        {sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES},
        {sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL},
    },
};
const char* kTcpNames[kTcpStateCount] = {"NONE",      "ESTABLISHED", "SYN_SENT",   "SYN_RECV",
                                         "FIN_WAIT",  "TIME_WAIT",   "CLOSE",      "CLOSE_WAIT",
                                         "LAST_ACK",  "LISTEN",      "SYNACK"};
}  // namespace

const char* tcp_state_name(uint8_t s) { return s < kTcpStateCount ? kTcpNames[s] : "?"; }
const char* udp_state_name(uint8_t s) { return s == kUdpOneway ? "ONEWAY" : "NORMAL"; }

uint8_t tcp_next_state(uint8_t state, int dir, bool syn, bool fin, bool ack, bool rst) {
  // ip_vs tcp_state_idx(): rst, then syn, then fin, then ack; none of them keeps the state.
  int row = rst ? 3 : syn ? 0 : fin ? 1 : ack ? 2 : -1;
  if (row < 0 || state >= kTcpStateCount) return state;
  return kTable[dir][row][state];
}

namespace {
size_t index_size(uint32_t capacity) {
  if (capacity > (1u << 30)) throw std::length_error("connection table: at most 2^30 connections");
  size_t n = 16;
  while (n < static_cast<size_t>(capacity) * 4) n <<= 1;  // two keys per conn, load <= 0.5
  return n;
}
constexpr size_t kHuge = 2u << 20;
}  // namespace

void* big_alloc(size_t size, size_t* bytes, void** base) {
  // Rounded and aligned to 2 MiB so that every part of the array can be a huge page.
  size_t want = (size + kHuge - 1) / kHuge * kHuge;
  *bytes = want + kHuge;
  void* p = mmap(nullptr, *bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  *base = p;
  uintptr_t aligned = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(uintptr_t{kHuge} - 1);
  madvise(reinterpret_cast<void*>(aligned), want, MADV_HUGEPAGE);  // advice only: no error if refused
  return reinterpret_cast<void*>(aligned);
}

void big_free(void* base, size_t bytes) {
  if (base) munmap(base, bytes);
}

ConnTable::ConnTable(uint32_t capacity) : conns_(capacity), slots_(index_size(capacity)) {
  mask_ = static_cast<uint32_t>(slots_.size() - 1);
  free_.reserve(capacity);
  for (uint32_t i = capacity; i > 0; i--) free_.push_back(i - 1);
}

Conn* ConnTable::lookup(const FlowKey& k, uint32_t h, int* dir) {
  for (uint32_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot s = slots_[i];
    if (s.ref == 0) return nullptr;
    if (s.hash != h) continue;
    Conn& c = conns_[(s.ref >> 1) - 1];
    const int d = static_cast<int>(s.ref & 1);
    if (same(c, d, k)) {
      *dir = d;
      return &c;
    }
  }
}

Conn* ConnTable::allocate() {
  if (free_.empty()) return nullptr;
  uint32_t i = free_.back();
  free_.pop_back();
  Conn& c = conns_[i];
  uint32_t gen = c.gen + 1;
  c = Conn{};
  c.gen = gen;
  return &c;
}

void ConnTable::insert(Conn* c) {
  uint32_t idx = static_cast<uint32_t>(c - conns_.data());
  c->in_use = true;
  index_put(c->key(0), idx, 0);
  index_put(c->key(1), idx, 1);
  used_++;
}

void ConnTable::remove(Conn* c) {
  if (!c->in_use) return;
  uint32_t idx = static_cast<uint32_t>(c - conns_.data());
  index_erase(c->key(0), idx, 0);
  index_erase(c->key(1), idx, 1);
  c->in_use = false;
  c->svc.reset();
  c->dest.reset();
  c->sp_hs.reset();
  free_.push_back(idx);
  used_--;
}

void ConnTable::rekey_server(Conn* c, uint32_t daddr, uint16_t dport) {
  uint32_t idx = static_cast<uint32_t>(c - conns_.data());
  index_erase(c->key(1), idx, 1);
  c->daddr = daddr;
  c->dport = dport;
  index_put(c->key(1), idx, 1);
}

void ConnTable::index_put(const FlowKey& k, uint32_t conn, uint8_t dir) {
  const uint32_t h = hash(k);
  uint32_t i = h & mask_;
  while (slots_[i].ref != 0) i = (i + 1) & mask_;
  slots_[i] = Slot{h, ((conn + 1) << 1) | dir};
}

// Linear probing with backward-shift deletion: no tombstones, lookups stay short. The slot
// to erase is the one naming this connection and side (its key is the connection's own).
void ConnTable::index_erase(const FlowKey& k, uint32_t conn, uint8_t dir) {
  const uint32_t ref = ((conn + 1) << 1) | dir;
  uint32_t i = hash(k) & mask_;
  while (true) {
    if (slots_[i].ref == 0) return;
    if (slots_[i].ref == ref) break;
    i = (i + 1) & mask_;
  }
  uint32_t hole = i;
  for (uint32_t j = (hole + 1) & mask_; slots_[j].ref != 0; j = (j + 1) & mask_) {
    uint32_t home = slots_[j].hash & mask_;
    // move j into the hole when its home is not in (hole, j] cyclically
    bool between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!between) {
      slots_[hole] = slots_[j];
      hole = j;
    }
  }
  slots_[hole].ref = 0;
}

}  // namespace fulcrum
