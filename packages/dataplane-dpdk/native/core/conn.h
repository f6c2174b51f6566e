// The connection table (DPVS conn): a fixed pool of connections and one open-addressing
// index holding both directions of each (client→VIP and server→local address). Sized once
// at start; nothing is allocated per packet. One table per worker lcore, no locks.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
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
  bool in_use = false;
  bool answered = false;  // the server has replied (SYN-ACK, or any UDP reply)
  uint8_t proto = 0;
  uint8_t state = 0;
  uint32_t caddr = 0, vaddr = 0, laddr = 0, daddr = 0;  // client, VIP, local, server (host order)
  uint16_t cport = 0, vport = 0, lport = 0, dport = 0;
  uint64_t created_ms = 0;
  uint64_t expires_ms = 0;
  uint32_t gen = 0;          // bumped on every reuse of the slot: stale timer entries are ignored
  int64_t wheel_tick = -1;   // the timer-wheel tick this connection is scheduled at
  uint64_t packets[2] = {0, 0};
  // Sequence-space shifts (core/tcp.h shift_sequence), 0 for plain FULLNAT: c2s_delta is
  // added to the client's sequence numbers toward the server (bytes the balancer inserted
  // into the server-bound stream, e.g. a PROXY-protocol header), s2c_delta to the server's
  // toward the client (SYNPROXY: cookie ISN minus the server's ISN). Each is taken back off
  // the other side's acknowledgements and SACK blocks.
  uint32_t c2s_delta = 0, s2c_delta = 0;
  // TOA / PROXY-protocol insertion (core/insert.cc); c2s_delta is the PROXY header's length
  // once the header is in the server-bound stream.
  uint32_t ins_stream_start = 0;  // client ISN + 1: the first byte of the server-bound stream
  uint32_t ins_server_next = 0;   // server ISN + 1: TOA rides client segments acknowledging exactly this
  uint8_t ins_flags = 0;          // InsertFlags

  // Sequence tracking for ending the connection with RSTs (core/drain.h track_segment), per
  // side in its own space: 0 = the client, 1 = the server. trk_seen says which are set.
  // (Here, where it fills padding: 16 bytes more per connection, not 24.)
  uint32_t trk_next[2] = {0, 0};  // the end of the furthest segment the side sent
  uint32_t trk_ack[2] = {0, 0};   // the furthest acknowledgement it sent
  uint8_t trk_seen = 0;           // TrackBits

  // SYNPROXY (core/synproxy.h): sp_state 0 = not a SYNPROXY connection, 1 = opening toward
  // the server (client frames held in sp_hs), 2 = open. sp_isn is the cookie the client got;
  // ts_delta the server's TSval minus the cookie SYN-ACK's (0 without timestamps).
  uint8_t sp_state = 0;
  bool sp_ts = false;
  uint32_t sp_isn = 0, sp_client_isn = 0, ts_delta = 0;
  uint32_t sp_last_seq = 0, sp_last_ack = 0, sp_dup_acks = 0;  // the ACK-storm filter
  std::unique_ptr<SynproxyHandshake> sp_hs;
  std::shared_ptr<const Service> svc;
  std::shared_ptr<Dest> dest;
  FlowKey key(int dir) const {
    return dir == 0 ? FlowKey{caddr, vaddr, cport, vport, proto} : FlowKey{daddr, laddr, dport, lport, proto};
  }
};

class ConnTable {
 public:
  explicit ConnTable(uint32_t capacity);
  uint32_t capacity() const { return static_cast<uint32_t>(conns_.size()); }
  uint32_t size() const { return used_; }
  // Finds the connection a packet with this flow belongs to; `dir` says which side sent it.
  Conn* lookup(const FlowKey& k, int* dir);
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
  struct Slot {
    FlowKey key;
    uint32_t conn;  // index + 1; 0 = empty
    uint8_t dir;
  };
  size_t hash(const FlowKey& k) const;
  void index_put(const FlowKey& k, uint32_t conn, uint8_t dir);
  void index_erase(const FlowKey& k);
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_;
  std::vector<Slot> slots_;
  size_t mask_;
  uint32_t used_ = 0;
};

}  // namespace fulcrum
