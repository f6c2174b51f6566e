#include "core/sched.h"

namespace fulcrum {

uint32_t plan_hash(const std::vector<HashField>& fields, const HashTuple& t) {
  uint32_t h = 0x811c9dc5u;
  auto mix = [&h](uint8_t b) { h = (h ^ b) * 0x01000193u; };
  for (HashField f : fields) {
    switch (f) {
      case HashField::SourceAddress:
        for (uint8_t i = 0; i < t.source_address_len; i++) mix(t.source_address[i]);
        break;
      case HashField::DestinationAddress:
        for (uint8_t i = 0; i < t.destination_address_len; i++) mix(t.destination_address[i]);
        break;
      case HashField::SourcePort:
        mix(static_cast<uint8_t>(t.source_port >> 8));
        mix(static_cast<uint8_t>(t.source_port));
        break;
      case HashField::DestinationPort:
        mix(static_cast<uint8_t>(t.destination_port >> 8));
        mix(static_cast<uint8_t>(t.destination_port));
        break;
    }
  }
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

}  // namespace fulcrum
