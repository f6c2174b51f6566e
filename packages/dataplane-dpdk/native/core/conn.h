// The connection table (DPVS conn): a fixed pool of connections and one open-addressing
// index holding both directions of each (client→VIP and server→local address). Sized once
// at start; nothing is allocated per packet. One table per worker lcore, no locks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#if defined(__SSE4_2__)
#include <nmmintrin.h>
#endif
#include <vector>

#include "core/service.h"
#include "core/synproxy.h"

namespace fulcrum {

// IPVS/DPVS TCP states, in ip_vs_proto_tcp.c order.
enum TcpState : uint8_t {
  kTcpNone = 0,
  kTcpEstablished,
  kTcpSynSent,
  kTcpSynRecv,
  kTcpFinWait,
  kTcpTimeWait,
  kTcpClose,
  kTcpCloseWait,
  kTcpLastAck,
  kTcpListen,
  kTcpSynAck,
  kTcpStateCount
};
enum UdpState : uint8_t { kUdpOneway = 0, kUdpNormal = 1, kUdpStateCount };

const char* tcp_state_name(uint8_t s);
const char* udp_state_name(uint8_t s);

// Next TCP state, IPVS's tcp_states table; dir 0 = from the client, 1 = from the server.
uint8_t tcp_next_state(uint8_t state, int dir, bool syn, bool fin, bool ack, bool rst);

struct FlowKey {
  uint32_t saddr, daddr;  // host order
  uint16_t sport, dport;
  uint8_t proto;
  bool operator==(const FlowKey& o) const {
    return saddr == o.saddr && daddr == o.daddr && sport == o.sport && dport == o.dport && proto == o.proto;
  }
};

enum InsertFlags : uint8_t { kInsSyn = 1, kInsSynAck = 2, kInsHeaderAcked = 4, kInsDataSeen = 8 };

struct Conn {
  // What a packet of an established connection reads comes first: the key, state and
  // flags, the sequence shifts and the timer in the first 64 bytes, then the server and
  // snapshot pointers; the rest (opening, SYNPROXY's and insertion's state) after them.
  bool in_use = false;
  bool answered = false;  // the server has replied (SYN-ACK, or any UDP reply)
  uint8_t proto = 0;
  uint8_t state = 0;
  uint32_t caddr = 0, vaddr = 0, laddr = 0, daddr = 0;  // client, VIP, local, server (host order)
  uint16_t cport = 0, vport = 0, lport = 0, dport = 0;
  // Sequence-space shifts (core/tcp.h shift_sequence), 0 for plain FULLNAT: c2s_delta is
  // added to the client's sequence numbers toward the server (bytes the balancer inserted
  // into the server-bound stream, e.g. a PROXY-protocol header), s2c_delta to the server's
  // toward the client (SYNPROXY: cookie ISN minus the server's ISN). Each is taken back off
  // the other side's acknowledgements and SACK blocks.
  uint32_t c2s_delta = 0, s2c_delta = 0;
  uint8_t sp_state = 0;   // SYNPROXY, see below
  bool sp_ts = false;     // SYNPROXY, see below
  uint8_t ins_flags = 0;  // TOA / PROXY-protocol insertion, see below: InsertFlags
  uint8_t trk_seen = 0;   // sequence tracking, see below: TrackBits
  uint32_t gen = 0;          // bumped on every reuse of the slot: stale timer entries are ignored
  uint8_t trk_wscale = 0;    // sequence tracking, see below: each side's window-scale shift
  uint64_t expires_ms = 0;
  int64_t wheel_tick = -1;   // the timer-wheel tick this connection is scheduled at
  std::shared_ptr<Dest> dest;
  std::shared_ptr<const Service> svc;
  // Sequence tracking for the window check and for ending the connection with RSTs
  // (core/track.h, on every TCP segment, so with the hot fields), per side in its own space:
  // 0 = the client, 1 = the server. trk_seen and trk_wscale (above) say which are set.
  uint32_t trk_next[2] = {0, 0};    // the end of the furthest segment the side sent
  uint32_t trk_ack[2] = {0, 0};     // the furthest acknowledgement it sent
  uint32_t trk_maxend[2] = {0, 0};  // how far the other side's ACK + window let it send
  uint32_t trk_maxwin[2] = {0, 0};  // the largest window it offered (scaled)
  uint64_t created_ms = 0;
  // TOA / PROXY-protocol insertion (core/insert.cc), with ins_flags above; c2s_delta is the
  // PROXY header's length once the header is in the server-bound stream.
  uint32_t ins_stream_start = 0;  // client ISN + 1: the first byte of the server-bound stream
  uint32_t ins_server_next = 0;   // server ISN + 1: TOA rides client segments acknowledging exactly this

  // SYNPROXY (core/synproxy.h), with sp_state and sp_ts above: sp_state 0 = not a SYNPROXY
  // connection, 1 = opening toward the server (client frames held in sp_hs), 2 = open;
  // sp_ts: timestamps are rewritten. sp_isn is the cookie the client got; ts_delta the
  // server's TSval minus the cookie SYN-ACK's (0 without timestamps).
  uint32_t sp_isn = 0, sp_client_isn = 0, ts_delta = 0;
  uint32_t sp_last_seq = 0, sp_last_ack = 0, sp_dup_acks = 0;  // the ACK-storm filter
  std::unique_ptr<SynproxyHandshake> sp_hs;
  FlowKey key(int dir) const {
    return dir == 0 ? FlowKey{caddr, vaddr, cport, vport, proto} : FlowKey{daddr, laddr, dport, lport, proto};
  }
};

// A fixed array of `n` T in memory of its own, asked for transparent huge pages (2 MiB,
// MADV_HUGEPAGE): a million connections and their index span ~180 MB, and packets of
// random connections would otherwise miss the TLB on almost every table access. Where the
// kernel gives no huge pages it is ordinary memory. Elements are value-initialised.
// The memory behind BigArray: `*base`/`*bytes` are what big_free takes back.
void* big_alloc(size_t size, size_t* bytes, void** base);
void big_free(void* base, size_t bytes);

template <typename T>
class BigArray {
 public:
  explicit BigArray(size_t n) : n_(n) {
    data_ = static_cast<T*>(big_alloc(n * sizeof(T), &bytes_, &base_));
    for (size_t i = 0; i < n_; i++) new (data_ + i) T();
  }
  ~BigArray() {
    for (size_t i = 0; i < n_; i++) data_[i].~T();
    big_free(base_, bytes_);
  }
  BigArray(const BigArray&) = delete;
  BigArray& operator=(const BigArray&) = delete;
  size_t size() const { return n_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + n_; }

 private:
  size_t n_;
  size_t bytes_ = 0;
  void* base_ = nullptr;
  T* data_;
};

class ConnTable {
 public:
  explicit ConnTable(uint32_t capacity);
  uint32_t capacity() const { return static_cast<uint32_t>(conns_.size()); }
  uint32_t size() const { return used_; }
  // Finds the connection a packet with this flow belongs to; `dir` says which side sent it.
  Conn* lookup(const FlowKey& k, int* dir) { return lookup(k, hash(k), dir); }
  Conn* lookup(const FlowKey& k, uint32_t hash, int* dir);  // `hash` = hash(k)
  static uint32_t hash(const FlowKey& k);  // inline, below
  // Fetch into the cache (no effect on the table): the index line where `hash` starts, and
  // the connection its first slot names when that slot has the same hash (most keys sit at
  // their home slot). The hot part of a Conn spans 128 bytes: up to three lines.
  void prefetch_slot(uint32_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }
  void prefetch_conn(uint32_t hash) const {
    const Slot s = slots_[hash & mask_];
    if (s.ref == 0 || s.hash != hash) return;
    const char* p = reinterpret_cast<const char*>(&conns_[(s.ref >> 1) - 1]);
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
    __builtin_prefetch(p + 127);
  }
  // A free connection, or nullptr when the table is full. Call insert() once filled in.
  Conn* allocate();
  Conn& at(uint32_t index) { return conns_[index]; }
  uint32_t index_of(const Conn* c) const { return static_cast<uint32_t>(c - conns_.data()); }
  void insert(Conn* c);
  void remove(Conn* c);
  // Points the server side of `c` at another server (SYNPROXY's retry within the handshake).
  void rekey_server(Conn* c, uint32_t daddr, uint16_t dport);
  template <typename Fn>
  void for_each(Fn fn) {
    for (auto& c : conns_)
      if (c.in_use) fn(c);
  }

 private:
  // The index holds no keys: a slot is 8 bytes (the key's 32-bit hash and a reference to
  // the connection and side), eight to a cache line, and a candidate whose hash matches is
  // confirmed against the connection's own fields, which the packet reads next anyway. So a
  // lookup touches one index line (usually) and the connection, and the index costs about a
  // third of the memory 24-byte keyed slots took. Capacity is below 2^31 connections and the
  // index below 2^32 slots (a slot's home is its hash's low bits).
  struct Slot {
    uint32_t hash;
    uint32_t ref;  // (connection index + 1) << 1 | dir; 0 = empty
  };
  static bool same(const Conn& c, int dir, const FlowKey& k) {
    return dir == 0 ? c.caddr == k.saddr && c.vaddr == k.daddr && c.cport == k.sport && c.vport == k.dport &&
                          c.proto == k.proto
                    : c.daddr == k.saddr && c.laddr == k.daddr && c.dport == k.sport && c.lport == k.dport &&
                          c.proto == k.proto;
  }
  void index_put(const FlowKey& k, uint32_t conn, uint8_t dir);
  void index_erase(const FlowKey& k, uint32_t conn, uint8_t dir);
  BigArray<Conn> conns_;
  std::vector<uint32_t> free_;
  BigArray<Slot> slots_;
  uint32_t mask_;
  uint32_t used_ = 0;
};

// CRC-32C of the two key words (two SSE4.2 instructions, as DPDK's own flow tables hash):
// well spread in the low bits a slot's home takes, for the sequential addresses and ports
// real traffic has. Builds without SSE4.2 use a multiplicative mix.
inline uint32_t ConnTable::hash(const FlowKey& k) {
  uint64_t a = (static_cast<uint64_t>(k.saddr) << 32) | k.daddr;
  uint64_t b = (static_cast<uint64_t>(k.sport) << 24) | (static_cast<uint64_t>(k.dport) << 8) | k.proto;
#if defined(__SSE4_2__)
  return static_cast<uint32_t>(_mm_crc32_u64(_mm_crc32_u64(0x9e3779b9u, a), b));
#else
  uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 29;
  return static_cast<uint32_t>(h);
#endif
}

}  // namespace fulcrum
