// Internet checksums (RFC 1071) and incremental updates (RFC 1624, eqn. 3). Values are
// taken as they lie in the packet (network order): one's-complement sums do not depend on
// byte order as long as every operand is read the same way.
#pragma once
#include <cstddef>
#include <cstdint>

namespace fulcrum {

uint32_t csum_partial(const void* data, size_t len, uint32_t sum);
inline uint16_t csum_fold(uint32_t sum) {
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Sum of the IPv4 pseudo-header (addresses as stored, network order).
uint32_t csum_pseudo_v4(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, uint16_t l4_len);

// True when the header (checksum field included) sums to 0xffff. Every received IPv4
// packet is checked: the usual 20-byte header is summed inline, five 32-bit loads.
inline bool ipv4_header_checksum_ok(const void* ip, size_t ihl_bytes) {
  if (ihl_bytes != 20) return csum_fold(csum_partial(ip, ihl_bytes, 0)) == 0xffff;
  const uint8_t* p = static_cast<const uint8_t*>(ip);
  auto at = [p](int i) {
    uint32_t w;
    __builtin_memcpy(&w, p + 4 * i, 4);  // one scalar load each (no copy through the stack)
    return uint64_t{w};
  };
  uint64_t acc = at(0) + at(1) + at(2) + at(3) + at(4);
  acc = (acc & 0xffffffffu) + (acc >> 32);
  return csum_fold(static_cast<uint32_t>(acc) + static_cast<uint32_t>(acc >> 32)) == 0xffff;
}
void ipv4_header_checksum_set(void* ip, size_t ihl_bytes);
// TCP/UDP over IPv4: checksum of the segment with its pseudo-header.
bool l4_checksum_ok(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, const void* l4, uint16_t l4_len);
uint16_t l4_checksum(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, const void* l4, uint16_t l4_len);

// HC' = ~(~HC + ~m + m') for a 32-bit and a 16-bit field.
inline uint16_t csum_replace4(uint16_t check, uint32_t from, uint32_t to) {
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~from) + static_cast<uint16_t>(~(from >> 16));
  sum += (to & 0xffff) + (to >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

inline uint16_t csum_replace2(uint16_t check, uint16_t from, uint16_t to) {
  uint32_t sum = static_cast<uint16_t>(~check);
  sum += static_cast<uint16_t>(~from) + to;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// Several fields at once: `delta` is the sum of ~old + new over every 16-bit half changed
// (csum_delta4/2 below). The same result as one csum_replace* per field, bit for bit: each
// of those folds an end-around-carry sum, which is 0 only when every term is.
inline uint32_t csum_delta4(uint32_t from, uint32_t to) {
  return static_cast<uint16_t>(~from) + static_cast<uint16_t>(~(from >> 16)) + (to & 0xffff) + (to >> 16);
}
inline uint32_t csum_delta2(uint16_t from, uint16_t to) { return static_cast<uint16_t>(~from) + uint32_t{to}; }
inline uint16_t csum_adjust(uint16_t check, uint32_t delta) {
  uint32_t sum = static_cast<uint16_t>(~check) + delta;  // delta < 2^20: no overflow
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

}  // namespace fulcrum
