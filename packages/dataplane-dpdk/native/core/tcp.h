// TCP header helpers shared by FULLNAT's extensions (SYNPROXY, TOA and PROXY-protocol
// insertion, MSS clamping): walking the options, and shifting sequence space with
// incremental checksum updates. Pointers are to the TCP header inside a packet; values in
// the packet stay in network order.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fulcrum {
namespace tcp {

constexpr uint8_t kOptEnd = 0;
constexpr uint8_t kOptNop = 1;
constexpr uint8_t kOptMss = 2;
constexpr uint8_t kOptWscale = 3;
constexpr uint8_t kOptSackPermitted = 4;
constexpr uint8_t kOptSack = 5;
constexpr uint8_t kOptTimestamp = 8;
constexpr uint8_t kOptToa = 254;

constexpr uint32_t kHeaderMin = 20;
constexpr uint32_t kHeaderMax = 60;

inline uint32_t header_len(const uint8_t* th) { return (th[12] >> 4) * 4u; }
inline uint8_t flags(const uint8_t* th) { return th[13]; }

// Calls fn(kind, offset, len) for each option (offset from the start of the TCP header,
// len including kind and length bytes; NOP has len 1). Stops at End. Returns false, having
// called fn for the options before it, when an option is malformed (length < 2 or running
// past the header).
template <typename Fn>
bool for_each_option(const uint8_t* th, Fn fn) {
  uint32_t end = header_len(th);
  uint32_t i = kHeaderMin;
  while (i < end) {
    uint8_t kind = th[i];
    if (kind == kOptEnd) return true;
    if (kind == kOptNop) {
      fn(kind, i, 1u);
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    uint32_t len = th[i + 1];
    if (len < 2 || i + len > end) return false;
    fn(kind, i, len);
    i += len;
  }
  return true;
}

// What a SYN or SYN-ACK negotiates. Fields are 0/false/-1 when the option is absent.
struct Options {
  bool valid = true;  // false: malformed option space (see for_each_option)
  uint16_t mss = 0;
  int8_t wscale = -1;
  bool sack_permitted = false;
  bool timestamp = false;
  uint32_t ts_val = 0, ts_ecr = 0;  // host order
  uint32_t sack_blocks = 0;         // number of SACK blocks (0–4)
};
Options parse_options(const uint8_t* th);

// Moves a segment into another sequence space, for a connection whose two ends disagree on
// it (a PROXY-protocol header added to the server-bound stream; a server ISN that differs
// from the SYNPROXY cookie the client was given): seq += seq_add; when ACK is set,
// ack -= ack_sub and every SACK block edge -= ack_sub. `check` is the TCP checksum field,
// updated incrementally. Arithmetic is modulo 2^32.
void shift_sequence(uint8_t* th, uint32_t seq_add, uint32_t ack_sub, uint8_t* check);

// Lowers the MSS option of a SYN or SYN-ACK to `mss` when it is larger; returns true when it
// changed anything. The checksum is updated incrementally.
bool clamp_mss(uint8_t* th, uint16_t mss, uint8_t* check);

// Adds `val_add` to the timestamp option's TSval and `ecr_add` to its TSecr (SYNPROXY: the
// server's timestamp clock differs from the one the cookie SYN-ACK showed the client).
// Returns false when the segment has no timestamp option. Checksum updated incrementally.
bool shift_timestamp(uint8_t* th, uint32_t val_add, uint32_t ecr_add, uint8_t* check);

}  // namespace tcp
}  // namespace fulcrum
