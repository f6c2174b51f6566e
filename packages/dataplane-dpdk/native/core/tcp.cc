#include "core/tcp.h"

#include <cstring>

#include "core/checksum.h"

namespace fulcrum {
namespace tcp {
namespace {

uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void put_be32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Rewrites n (<= 8) bytes at offset `at` of the TCP header, fixing the checksum at `check`
// incrementally (RFC 1624) whatever the parity of `at`: an odd offset pairs each byte with
// its neighbour the other way round, as a leading pad byte reproduces.
void rewrite(uint8_t* th, uint32_t at, const uint8_t* to, uint32_t n, uint8_t* check) {
  uint8_t a[10] = {}, b[10] = {};
  uint32_t pad = at & 1;
  std::memcpy(a + pad, th + at, n);
  std::memcpy(b + pad, to, n);
  uint32_t sum = static_cast<uint16_t>(~load16(check));
  sum += static_cast<uint16_t>(~csum_fold(csum_partial(a, n + pad, 0)));
  sum += csum_fold(csum_partial(b, n + pad, 0));
  uint16_t c = static_cast<uint16_t>(~csum_fold(sum));
  std::memcpy(check, &c, 2);
  std::memcpy(th + at, to, n);
}

// Adds `delta` to the big-endian 32-bit number at offset `at`.
void add32(uint8_t* th, uint32_t at, uint32_t delta, uint8_t* check) {
  uint8_t v[4];
  put_be32(v, be32(th + at) + delta);
  rewrite(th, at, v, 4, check);
}

}  // namespace

Options parse_options(const uint8_t* th) {
  Options o;
  o.valid = for_each_option(th, [&](uint8_t kind, uint32_t at, uint32_t len) {
    const uint8_t* v = th + at + 2;
    if (kind == kOptMss && len == 4) {
      o.mss = static_cast<uint16_t>((v[0] << 8) | v[1]);
    } else if (kind == kOptWscale && len == 3) {
      o.wscale = static_cast<int8_t>(v[0] > 14 ? 14 : v[0]);  // RFC 7323: larger counts as 14
    } else if (kind == kOptSackPermitted && len == 2) {
      o.sack_permitted = true;
    } else if (kind == kOptTimestamp && len == 10) {
      o.timestamp = true;
      o.ts_val = be32(v);
      o.ts_ecr = be32(v + 4);
    } else if (kind == kOptSack && len >= 10 && (len - 2) % 8 == 0) {
      o.sack_blocks = (len - 2) / 8;
    }
  });
  return o;
}

void shift_sequence(uint8_t* th, uint32_t seq_add, uint32_t ack_sub, uint8_t* check) {
  if (seq_add) add32(th, 4, seq_add, check);
  if (!ack_sub || !(flags(th) & 0x10)) return;
  add32(th, 8, 0u - ack_sub, check);
  for_each_option(th, [&](uint8_t kind, uint32_t at, uint32_t len) {
    if (kind != kOptSack || len < 10 || (len - 2) % 8 != 0) return;
    for (uint32_t e = at + 2; e + 4 <= at + len; e += 4) add32(th, e, 0u - ack_sub, check);
  });
}

bool clamp_mss(uint8_t* th, uint16_t mss, uint8_t* check) {
  bool changed = false;
  for_each_option(th, [&](uint8_t kind, uint32_t at, uint32_t len) {
    if (kind != kOptMss || len != 4) return;
    const uint8_t* v = th + at + 2;
    if (((v[0] << 8) | v[1]) <= mss) return;
    const uint8_t to[2] = {static_cast<uint8_t>(mss >> 8), static_cast<uint8_t>(mss)};
    rewrite(th, at + 2, to, 2, check);
    changed = true;
  });
  return changed;
}

bool shift_timestamp(uint8_t* th, uint32_t val_add, uint32_t ecr_add, uint8_t* check) {
  bool found = false;
  for_each_option(th, [&](uint8_t kind, uint32_t at, uint32_t len) {
    if (kind != kOptTimestamp || len != 10 || found) return;
    found = true;
    if (val_add) add32(th, at + 2, val_add, check);
    if (ecr_add) add32(th, at + 6, ecr_add, check);
  });
  return found;
}

}  // namespace tcp
}  // namespace fulcrum
