// The client's address toward the real servers, as DPVS carries it in FULLNAT: TOA (TCP
// option 254 on the first segments toward the server, the layout of DPVS's kmod/toa) or the
// PROXY protocol (a v1/v2 header at the start of the server-bound byte stream, the rest of
// the stream then shifted by its length). The packet-path half is in Pipeline
// (insert_client_address, clamp_syn_mss in core/insert.cc); these are the pure parts.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fulcrum {

// A service's passthrough, as the facade (src/snapshot.ts) converted it.
struct InsertSettings {
  enum Kind : uint8_t { kNone = 0, kToa = 1, kProxy = 2 };
  uint8_t kind = kNone;
  bool toa_prune = true;  // TOA onNoRoom: prune padding and SACK blocks first (else skip)
  uint8_t pp_version = 2;
  bool pp_crc32c = false;
  bool pp_unique_id = false;
  // Static v2 TLVs, encoded by @fulcrum/proxy-protocol: those that come before
  // PP2_TYPE_UNIQUE_ID in its order (ALPN, AUTHORITY) and those after it (NETNS, custom).
  std::vector<uint8_t> pp_tlvs_before, pp_tlvs_after;
};

namespace insert {

constexpr uint32_t kToaLen = 8;        // IPv4 client: kind, length, port, address
constexpr uint32_t kProxyMax = 1024;   // the facade refuses settings whose header could be longer
constexpr uint32_t kUniqueIdMax = 64;

// CRC-32C (Castagnoli), as PP2_TYPE_CRC32C uses it.
uint32_t crc32c(const uint8_t* p, size_t n);

// The PROXY header for one connection (addresses host order) into `out` (kProxyMax bytes);
// returns its length, 0 when it would not fit.
uint32_t proxy_header(const InsertSettings& s, uint32_t caddr, uint16_t cport, uint32_t vaddr, uint16_t vport,
                      const char* unique_id, uint32_t unique_len, uint8_t* out);

// The option area of TCP header `th` with the client's TOA first (DPVS puts it right after
// the fixed header) and any kind-254 option already there dropped (a client could forge
// one), EOL-padded to a multiple of 4, into `out` (40 bytes). `prune` also drops NOP
// padding and SACK blocks (what a segment after the handshake can do without; timestamps,
// MSS, window scale and SACK-permitted are kept). Returns the area's length, or -1 when it
// does not fit in 40 bytes or the options are malformed. The same rule as @fulcrum/toa's
// insertToa, which the tests compare it with byte for byte.
int toa_options(const uint8_t* th, uint32_t caddr, uint16_t cport, bool prune, uint8_t* out);

}  // namespace insert
}  // namespace fulcrum
