// Taking a server out of service (DPVS/IPVS expire_nodest_conn, and the drain policy of the
// kernel's `retired` servers): per-connection sequence tracking so that the balancer, not
// being a TCP endpoint itself, can end a connection with a RST each side accepts, and the
// per-server drain timing. The Pipeline's part is in core/drain.cc.
#pragma once
#include <cstdint>
#include <string>

#include "core/conn.h"
#include "core/tcp.h"

namespace fulcrum {

// Conn::trk_seen bits: which of trk_next / trk_ack hold a value, per side (0 client, 1 server).
enum TrackBits : uint8_t { kTrkNext0 = 1, kTrkNext1 = 2, kTrkAck0 = 4, kTrkAck1 = 8 };

// Records where side `dir` stands in its own sequence space (before any shift): the end of
// the furthest segment it sent (seq + data + SYN + FIN) and the furthest it acknowledged.
// Retransmissions and reordered segments never move either back (serial arithmetic).
// `l4len` is the TCP segment's length (header + data).
inline void track_segment(Conn& c, int dir, const uint8_t* th, uint32_t l4len) {
  const uint8_t f = th[13];
  if (f & 0x04) return;  // RST: the connection is ending, nothing left to place
  auto rd = [](const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  };
  uint32_t hl = tcp::header_len(th);
  uint32_t end = rd(th + 4) + (l4len > hl ? l4len - hl : 0) + ((f & 0x02) ? 1 : 0) + ((f & 0x01) ? 1 : 0);
  const uint8_t nbit = dir ? kTrkNext1 : kTrkNext0, abit = dir ? kTrkAck1 : kTrkAck0;
  if (!(c.trk_seen & nbit) || static_cast<int32_t>(end - c.trk_next[dir]) > 0) {
    c.trk_next[dir] = end;
    c.trk_seen |= nbit;
  }
  if (f & 0x10) {
    uint32_t ack = rd(th + 8);
    if (!(c.trk_seen & abit) || static_cast<int32_t>(ack - c.trk_ack[dir]) > 0) {
      c.trk_ack[dir] = ack;
      c.trk_seen |= abit;
    }
  }
}

// The RSTs that end connection `c` toward one side (0 = the client, 1 = the server), in that
// side's sequence space. `first` is the side's own last acknowledgement (its RCV.NXT when
// it sent it); `second`, when `has_second`, is where the other side's stream ends, moved
// into this side's space: it differs from `first` when data was in flight or its ACK was
// not seen yet, and then a second RST goes with it (RFC 5961 receivers take only an exact
// RCV.NXT; the one that does not match draws at most a challenge ACK). `ack` is this side's
// own next sequence number, when known (the RST then carries ACK).
struct ResetPlan {
  bool send = false;
  uint32_t first = 0;
  bool has_second = false;
  uint32_t second = 0;
  bool has_ack = false;
  uint32_t ack = 0;
};

inline ResetPlan reset_plan(const Conn& c, int toward) {
  ResetPlan p;
  const int other = 1 - toward;
  const uint8_t own_ack = toward ? kTrkAck1 : kTrkAck0, own_next = toward ? kTrkNext1 : kTrkNext0;
  const uint8_t other_next = other ? kTrkNext1 : kTrkNext0;
  // The other side's stream as this side numbers it: client → server adds c2s_delta,
  // server → client adds s2c_delta (core/tcp.h shift_sequence).
  const uint32_t shift = toward ? c.c2s_delta : c.s2c_delta;
  bool a = c.trk_seen & own_ack, b = c.trk_seen & other_next;
  if (!a && !b) return p;
  p.send = true;
  uint32_t stream_end = c.trk_next[other] + shift;
  p.first = a ? c.trk_ack[toward] : stream_end;
  if (a && b && stream_end != p.first) {
    p.has_second = true;
    p.second = stream_end;
  }
  p.has_ack = c.trk_seen & own_next;
  p.ack = c.trk_next[toward];
  return p;
}

// A drain asked for by the control plane, applied to the connections of (service, server)
// as the worker's table scan reaches them (DrainRequest's Dest may be one the snapshot no
// longer lists: a removed server's connections still point at it).
struct DrainRequest {
  uint32_t service;
  std::string server;
  uint64_t idle_ms;
  uint64_t deadline_at_ms;  // the worker's clock
};

}  // namespace fulcrum
