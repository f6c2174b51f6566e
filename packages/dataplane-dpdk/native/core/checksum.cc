#include "core/checksum.h"

#include <cstring>

namespace fulcrum {

// Eight bytes per load, as two 32-bit halves into a 64-bit accumulator: the one's-complement
// sum of 32-bit words folds to the sum of their 16-bit halves, so the result is the same as
// word by word (RFC 1071 section 2(C)), with a quarter of the loads. Headers and the 64-byte
// segments of the established path take a handful of iterations instead of dozens.
uint32_t csum_partial(const void* data, size_t len, uint32_t sum) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t acc = sum;
  while (len >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    acc += (w & 0xffffffffu) + (w >> 32);
    p += 8;
    len -= 8;
  }
  if (len >= 4) {
    uint32_t w;
    std::memcpy(&w, p, 4);
    acc += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    std::memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len) {
    uint16_t w = 0;
    std::memcpy(&w, p, 1);  // the odd byte is the high-order byte in network order
    acc += w;
  }
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

uint32_t csum_pseudo_v4(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, uint16_t l4_len) {
  uint64_t acc = 0;
  acc += (saddr_be & 0xffff) + (saddr_be >> 16);
  acc += (daddr_be & 0xffff) + (daddr_be >> 16);
  // proto and length as 16-bit network-order words, read in memory order
  uint8_t tail[4] = {0, proto, static_cast<uint8_t>(l4_len >> 8), static_cast<uint8_t>(l4_len)};
  uint16_t w0, w1;
  std::memcpy(&w0, tail, 2);
  std::memcpy(&w1, tail + 2, 2);
  acc += w0 + w1;
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  return static_cast<uint32_t>(acc);
}

void ipv4_header_checksum_set(void* ip, size_t ihl_bytes) {
  uint8_t* p = static_cast<uint8_t*>(ip);
  p[10] = p[11] = 0;
  uint16_t c = static_cast<uint16_t>(~csum_fold(csum_partial(p, ihl_bytes, 0)));
  std::memcpy(p + 10, &c, 2);
}

bool l4_checksum_ok(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, const void* l4, uint16_t l4_len) {
  return csum_fold(csum_partial(l4, l4_len, csum_pseudo_v4(saddr_be, daddr_be, proto, l4_len))) == 0xffff;
}

uint16_t l4_checksum(uint32_t saddr_be, uint32_t daddr_be, uint8_t proto, const void* l4, uint16_t l4_len) {
  return static_cast<uint16_t>(
      ~csum_fold(csum_partial(l4, l4_len, csum_pseudo_v4(saddr_be, daddr_be, proto, l4_len))));
}

}  // namespace fulcrum
