// TCP sequence tracking per connection, on every forwarded segment, for two users:
//  - the window check (options.tcp.windowCheck): a segment outside what the two ends have
//    told each other is dropped before it can move the connection's state or reach the other
//    end (the four bounds of van Rooij's "Real Stateful TCP Packet Filtering", which Linux's
//    conntrack applies, here in the balancer's own words);
//  - drain and expire (core/drain.h), which end a connection with a RST each side accepts.
// Each side is tracked in its own sequence space: 0 = the client, 1 = the server. An ACK is
// moved into the acknowledged side's space by taking off the shift the balancer adds to that
// side's sequence numbers (c2s_delta for the client's, s2c_delta for the server's).
#pragma once
#include <cstdint>

#include "core/conn.h"
#include "core/tcp.h"

namespace fulcrum {

// Conn::trk_seen bits: which values are set, per side (0 client, 1 server). kTrkWin: the
// side's SYN (the client's) or SYN-ACK (the server's) was seen, so its window state is set;
// kTrkScale: both offered window scaling, so windows after the handshake are scaled.
enum TrackBits : uint8_t {
  kTrkNext0 = 1,
  kTrkNext1 = 2,
  kTrkAck0 = 4,
  kTrkAck1 = 8,
  kTrkWin0 = 16,
  kTrkWin1 = 32,
  kTrkScale = 64,
  kTrkWinBoth = kTrkWin0 | kTrkWin1,
};
// Conn::trk_wscale: each side's window-scale shift in a nibble (client low, server high);
// 15 = the side's SYN offered none.
constexpr uint8_t kTrkNoScale = 15;

// An ACK that may lag the acknowledged side's furthest byte by this much when the sender
// never advertised a window (conntrack's MAXACKWINDOW fallback).
constexpr uint32_t kTrkAckWindowDefault = 66000;

namespace track_detail {
inline uint32_t rd32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline bool after(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) > 0; }
// The shift added to side `s`'s sequence numbers on their way to the other side.
inline uint32_t shift_of(const Conn& c, int s) { return s ? c.s2c_delta : c.c2s_delta; }
// The end of a segment in its sender's space: seq + data + SYN + FIN.
inline uint32_t seg_end(const uint8_t* th, uint32_t l4len) {
  const uint8_t f = th[13];
  const uint32_t hl = tcp::header_len(th);
  return rd32(th + 4) + (l4len > hl ? l4len - hl : 0) + ((f & 0x02) ? 1 : 0) + ((f & 0x01) ? 1 : 0);
}
}  // namespace track_detail

// Forgets what was tracked: a new SYN starts the 4-tuple over (a reused connection).
inline void track_restart(Conn& c) { c.trk_seen = 0; }

// Records segment `th` (`l4len` bytes of TCP header and data) sent by side `dir`: the end of
// its furthest segment, its furthest acknowledgement, the largest window it offered, and how
// far it lets the other side send (its ACK + window, in the other side's space). A SYN (or
// SYN-ACK) sets the side's window state. Retransmitted and reordered segments never move a
// value back (serial arithmetic). RSTs change nothing: the connection is ending.
inline void track_segment(Conn& c, int dir, const uint8_t* th, uint32_t l4len) {
  using namespace track_detail;
  const uint8_t f = th[13];
  if (f & 0x04) return;
  const int other = 1 - dir;
  const uint8_t nbit = dir ? kTrkNext1 : kTrkNext0, abit = dir ? kTrkAck1 : kTrkAck0;
  const uint8_t wbit = dir ? kTrkWin1 : kTrkWin0, owbit = dir ? kTrkWin0 : kTrkWin1;
  const uint32_t end = seg_end(th, l4len);
  if (!(c.trk_seen & nbit) || after(end, c.trk_next[dir])) {
    c.trk_next[dir] = end;
    c.trk_seen |= nbit;
  }
  uint32_t win = (uint32_t{th[14]} << 8) | th[15];
  if (f & 0x02) {
    // A SYN's window is never scaled; its options say whether this side will scale.
    if (!(c.trk_seen & wbit)) {
      const int8_t ws = tcp::parse_options(th).wscale;
      const uint8_t nib = ws >= 0 ? static_cast<uint8_t>(ws > 14 ? 14 : ws) : kTrkNoScale;
      c.trk_wscale = static_cast<uint8_t>(dir ? (c.trk_wscale & 0x0f) | (nib << 4) : (c.trk_wscale & 0xf0) | nib);
      c.trk_maxwin[dir] = win ? win : 1;
      c.trk_maxend[dir] = c.trk_next[dir];
      c.trk_seen |= wbit;
      const bool both = (c.trk_seen & kTrkWinBoth) == kTrkWinBoth;
      if (both && (c.trk_wscale & 0x0f) != kTrkNoScale && (c.trk_wscale >> 4) != kTrkNoScale)
        c.trk_seen |= kTrkScale;
    }
  } else {
    if (c.trk_seen & kTrkScale) win <<= dir ? (c.trk_wscale >> 4) : (c.trk_wscale & 0x0f);
    if ((c.trk_seen & wbit) && win > c.trk_maxwin[dir]) c.trk_maxwin[dir] = win;
  }
  // Data beyond what the receiver allowed, which the receiver evidently took: its window
  // was larger than it said (conntrack widens it the same way).
  if ((c.trk_seen & kTrkWinBoth) == kTrkWinBoth && after(end, c.trk_maxend[dir]))
    c.trk_maxwin[other] += end - c.trk_maxend[dir];
  if (f & 0x10) {
    const uint32_t ack = rd32(th + 8);
    if (!(c.trk_seen & abit) || after(ack, c.trk_ack[dir])) {
      c.trk_ack[dir] = ack;
      c.trk_seen |= abit;
    }
    if (c.trk_seen & owbit) {
      // A zero window still lets one byte through: the other side's window probe.
      const uint32_t edge = ack - shift_of(c, other) + (win ? win : 1);
      if (after(edge, c.trk_maxend[other])) c.trk_maxend[other] = edge;
    }
  }
}

// Whether segment `th` from side `dir` lies within what both ends have told each other; only
// meaningful once both sides' window state is set (trk_seen & kTrkWinBoth), and not for
// SYNs. The bounds: its sequence number no further than the receiver allowed; its end not
// older than one receive window before the furthest byte sent; its ACK not beyond what the
// other side sent, nor older than one of this side's windows. A segment without data, SYN or
// FIN (a pure ACK) is not placed by its sequence number, only by its ACK.
inline bool track_in_window(const Conn& c, int dir, const uint8_t* th, uint32_t l4len) {
  using namespace track_detail;
  const int other = 1 - dir;
  const uint8_t f = th[13];
  const uint32_t seq = rd32(th + 4), end = seg_end(th, l4len);
  if (seq != end || (f & 0x04)) {
    if (after(seq, c.trk_maxend[dir])) return false;
    if (!after(end, c.trk_next[dir] - c.trk_maxwin[other] - 1)) return false;
  }
  if (f & 0x10) {
    const uint32_t ack = rd32(th + 8) - shift_of(c, other);
    if (after(ack, c.trk_next[other])) return false;
    const uint32_t lag = c.trk_maxwin[dir] ? c.trk_maxwin[dir] : kTrkAckWindowDefault;
    if (!after(ack, c.trk_next[other] - lag - 1)) return false;
  }
  return true;
}

}  // namespace fulcrum
