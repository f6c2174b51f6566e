// Taking a server out of service (DPVS/IPVS expire_nodest_conn, and the drain policy of the
// kernel's `retired` servers): from the per-connection sequence tracking (core/track.h), the
// RSTs with which the balancer, not being a TCP endpoint itself, ends a connection so that
// each side accepts them; and the per-server drain timing. The Pipeline's part is in core/drain.cc.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/conn.h"
#include "core/tcp.h"
#include "core/track.h"

namespace fulcrum {

// A segment the balancer does not forward (its connection is ending as it arrives, core/drain.cc
// expire_on_packet) still says where its sender's receive side stands: only its
// acknowledgement is recorded. Its own sequence end is not: the other side never gets it.
inline void track_ack(Conn& c, int dir, const uint8_t* th) {
  const uint8_t f = th[13];
  if ((f & 0x04) || !(f & 0x10)) return;  // a RST, or no acknowledgement
  uint32_t ack = (uint32_t{th[8]} << 24) | (uint32_t{th[9]} << 16) | (uint32_t{th[10]} << 8) | th[11];
  const uint8_t abit = dir ? kTrkAck1 : kTrkAck0;
  if (!(c.trk_seen & abit) || static_cast<int32_t>(ack - c.trk_ack[dir]) > 0) {
    c.trk_ack[dir] = ack;
    c.trk_seen |= abit;
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

// An expire asked for by the control plane (`retired` with action expire): every connection
// of (service, server) that exists when the worker takes it ends. The worker's table walk
// (Pipeline::expire_walk, a chunk per loop iteration) resets those it meets, and a segment of
// one it has not reached yet ends it as it arrives (Pipeline::expire_on_packet). `left`:
// the slots the walk still looks at for this request, a whole lap of the table from where
// the cursor stood when the request came. `spared`: Dests of that server a later snapshot
// brought (the server came back): their connections are newer than the expire.
struct ExpireRequest {
  uint32_t service;
  std::string server;
  uint32_t left;
  std::vector<std::shared_ptr<const Dest>> spared;
};

}  // namespace fulcrum
