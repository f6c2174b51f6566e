// The kernel's planHash (src/plan.ts) for native dataplanes, so that a hash plan picks the
// same server whichever dataplane executes it: FNV-1a 32 over the fields' bytes in the
// plan's order (an address as its network-order bytes, 4 for IPv4 and 16 for IPv6; a port
// as two bytes, high first), finished with MurmurHash3's fmix32. Header-only, C++11, no
// dependencies. Include it as "fulcrum/plan-hash.h" with the package's native/ folder on
// the include path (binding.gyp: "<!(node -p \"require('@fulcrum/kernel/native')\")").
#ifndef FULCRUM_KERNEL_PLAN_HASH_H_
#define FULCRUM_KERNEL_PLAN_HASH_H_
#include <cstddef>
#include <cstdint>

namespace fulcrum {
namespace kernel {

// A hash plan's fields, numbered as the dataplanes receive them from TypeScript
// (HashField in src/plan.ts, in this order).
enum PlanHashField : uint8_t {
  kPlanHashSourceAddress = 0,
  kPlanHashSourcePort = 1,
  kPlanHashDestinationAddress = 2,
  kPlanHashDestinationPort = 3,
};

// What a hash plan may read of a connection; ports in host order.
struct PlanHashTuple {
  const uint8_t* source_address;
  uint8_t source_address_len;
  uint16_t source_port;
  const uint8_t* destination_address;
  uint8_t destination_address_len;
  uint16_t destination_port;
};

inline uint32_t plan_hash_bytes(uint32_t h, const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x01000193u;
  return h;
}

// planHash(fields, tuple): `fields` holds `n` PlanHashField values (any integer type).
template <typename Field>
inline uint32_t plan_hash(const Field* fields, size_t n, const PlanHashTuple& t) {
  uint32_t h = 0x811c9dc5u;
  for (size_t i = 0; i < n; i++) {
    switch (static_cast<PlanHashField>(fields[i])) {
      case kPlanHashSourceAddress:
        h = plan_hash_bytes(h, t.source_address, t.source_address_len);
        break;
      case kPlanHashDestinationAddress:
        h = plan_hash_bytes(h, t.destination_address, t.destination_address_len);
        break;
      case kPlanHashSourcePort:
      case kPlanHashDestinationPort: {
        const uint16_t port = static_cast<PlanHashField>(fields[i]) == kPlanHashSourcePort ? t.source_port
                                                                                            : t.destination_port;
        const uint8_t b[2] = {static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port)};
        h = plan_hash_bytes(h, b, 2);
        break;
      }
    }
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

}  // namespace kernel
}  // namespace fulcrum

#endif  // FULCRUM_KERNEL_PLAN_HASH_H_
