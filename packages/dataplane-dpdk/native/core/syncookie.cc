// SYN cookies and the keyed hash under them (declared in core/synproxy.h). No DPDK, no Node:
// built into the core test on its own.
#include <cstring>
#include <random>

#include "core/synproxy.h"

namespace fulcrum {

namespace {

inline uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
  void absorb(uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

uint64_t le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

// 128 bits from the system's random source (/dev/urandom through std::random_device).
void fresh_key(uint64_t& k0, uint64_t& k1) {
  std::random_device rd;
  k0 = (static_cast<uint64_t>(rd()) << 32) | rd();
  k1 = (static_cast<uint64_t>(rd()) << 32) | rd();
}

}  // namespace

uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t* data, size_t len) {
  SipState s{k0 ^ 0x736f6d6570736575ull, k1 ^ 0x646f72616e646f6dull, k0 ^ 0x6c7967656e657261ull,
             k1 ^ 0x7465646279746573ull};
  size_t full = len & ~size_t{7};
  for (size_t i = 0; i < full; i += 8) s.absorb(le64(data + i));
  // The last block: the remaining bytes, then the length's low byte on top.
  uint64_t last = static_cast<uint64_t>(len & 0xff) << 56;
  for (size_t i = 0; i < (len & 7); i++) last |= static_cast<uint64_t>(data[full + i]) << (8 * i);
  s.absorb(last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; i++) s.round();
  return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint32_t SynCookies::hash(const Key& k, uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                          uint32_t count, uint32_t data) {
  uint8_t in[20];
  std::memcpy(in, &saddr, 4);
  std::memcpy(in + 4, &daddr, 4);
  std::memcpy(in + 8, &sport, 2);
  std::memcpy(in + 10, &dport, 2);
  std::memcpy(in + 12, &count, 4);
  std::memcpy(in + 16, &data, 4);
  return static_cast<uint32_t>(siphash24(k.k0, k.k1, in, sizeof(in)));
}

// A new epoch draws a new secret into the slot of the epoch two before it.
uint32_t SynCookies::make(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint32_t isn,
                          uint32_t data, uint64_t now_ms) {
  int64_t epoch = static_cast<int64_t>(now_ms / rotate_ms_);
  Key& k = keys_[epoch & 1];
  if (k.epoch < epoch) {
    fresh_key(k.k0, k.k1);
    k.epoch = epoch;
  }
  uint32_t e = static_cast<uint32_t>(epoch);
  data &= (1u << kDataBits) - 1;
  uint32_t mac = hash(k, saddr, daddr, sport, dport, e, data) & (0xffffffu >> kDataBits);
  return hash(k, saddr, daddr, sport, dport, 0, 0) + isn + ((e & 0xff) << 24) + ((mac << kDataBits) | data);
}

}  // namespace fulcrum
