// The core on its own, without Node: built and run by src/__tests__/core-native.test.ts
// (g++ against pkg-config libdpdk only), so the core stays free of N-API. Prints one line
// per check and exits non-zero on the first failure.
#include <atomic>
#include <cstdio>
#include <thread>
#include <vector>
#include <cstdlib>
#include <cstring>
#include <random>
#include <unordered_map>

#include <rte_byteorder.h>

#include "core/checksum.h"
#include "core/conn.h"
#include "core/sched.h"
#include "core/laddr.h"
#include "core/worker.h"
#include "core/synproxy.h"
#include "core/tcp.h"

using namespace fulcrum;

#define CHECK(cond)                                                        \
  do {                                                                     \
    if (!(cond)) {                                                         \
      std::fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                        \
    }                                                                      \
  } while (0)

static void plan_hash_vectors() {
  // The kernel's vectors (packages/kernel/src/__tests__/plan.test.ts).
  const uint8_t a[4] = {192, 168, 1, 7}, d[4] = {10, 0, 0, 1}, b[4] = {10, 1, 2, 3};
  CHECK(plan_hash({HashField::SourceAddress}, HashTuple{a, 4, 40000, d, 4, 80}) == 1732467182u);
  CHECK(plan_hash({HashField::SourceAddress, HashField::SourcePort}, HashTuple{b, 4, 0x1234, d, 4, 80}) ==
        200941749u);
  const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  CHECK(plan_hash({HashField::SourceAddress}, HashTuple{v6, 16, 40000, d, 4, 80}) == 4279221231u);
  std::puts("ok plan_hash vectors");
}

// RFC 1071 word by word, the plainest way: what csum_partial's wider loads must equal.
static uint16_t reference_sum(const uint8_t* p, size_t len) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < len; i += 2) s += (uint32_t{p[i]} << 8) | p[i + 1];
  if (len & 1) s += uint32_t{p[len - 1]} << 8;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(s);
}

static void incremental_checksums() {
  std::mt19937 rng(1);
  // The sum of any length at any alignment, with a carried-in partial sum, folds to the
  // reference (network order: the reference reads big-endian words, csum_partial as stored).
  for (int n = 0; n < 20000; n++) {
    uint8_t buf[1600 + 8];
    size_t off = rng() % 8, len = n < 4000 ? n % 80 : rng() % 1600;
    for (size_t i = 0; i < len; i++) buf[off + i] = static_cast<uint8_t>(n % 7 == 0 ? 0xff : rng());
    uint16_t folded = csum_fold(csum_partial(buf + off, len, 0));
    uint16_t be = rte_be_to_cpu_16(folded);
    uint16_t ref = reference_sum(buf + off, len);
    CHECK(be == ref || (be == 0xffff && ref == 0) || (be == 0 && ref == 0xffff));
    uint32_t carried = static_cast<uint32_t>(rng());
    CHECK(csum_fold(csum_partial(buf + off, len, carried)) ==
          csum_fold(csum_fold(carried) + static_cast<uint32_t>(folded)));
  }
  // The inline 20-byte IPv4 header check agrees with the general sum, set or corrupted.
  for (int n = 0; n < 20000; n++) {
    uint8_t hdr[24];
    for (auto& x : hdr) x = static_cast<uint8_t>(n % 5 == 0 ? 0xff : rng());
    size_t ihl = n % 3 == 0 ? 24 : 20;
    if (n % 2 == 0) ipv4_header_checksum_set(hdr, ihl);
    CHECK(ipv4_header_checksum_ok(hdr, ihl) == (reference_sum(hdr, ihl) == 0xffff));
    if (n % 2 == 0) CHECK(ipv4_header_checksum_ok(hdr, ihl));
  }
  // Several fields in one csum_adjust equal one csum_replace* after another, bit for bit.
  for (int n = 0; n < 200000; n++) {
    auto r16 = [&] { return static_cast<uint16_t>(n % 11 == 0 ? (rng() & 1 ? 0xffff : 0) : rng()); };
    auto r32 = [&] { return (uint32_t{r16()} << 16) | r16(); };
    uint16_t c = r16(), p0 = r16(), p1 = r16(), q0 = r16(), q1 = r16();
    uint32_t a0 = r32(), a1 = r32(), b0 = r32(), b1 = r32();
    uint16_t seq = csum_replace2(csum_replace2(csum_replace4(csum_replace4(c, a0, a1), b0, b1), p0, p1), q0, q1);
    uint16_t one = csum_adjust(c, csum_delta4(a0, a1) + csum_delta4(b0, b1) + csum_delta2(p0, p1) + csum_delta2(q0, q1));
    CHECK(seq == one);
  }
  // Rewriting a field with csum_replace* equals recomputing the sum, for random data.
  for (int n = 0; n < 10000; n++) {
    uint8_t buf[40];
    for (auto& x : buf) x = static_cast<uint8_t>(rng());
    buf[16] = buf[17] = 0;
    uint16_t c = static_cast<uint16_t>(~csum_fold(csum_partial(buf, sizeof buf, 0)));
    uint32_t from, to = static_cast<uint32_t>(rng());
    __builtin_memcpy(&from, buf + 4, 4);
    __builtin_memcpy(buf + 4, &to, 4);
    uint16_t inc = csum_replace4(c, from, to);
    uint16_t full = static_cast<uint16_t>(~csum_fold(csum_partial(buf, sizeof buf, 0)));
    // 0x0000 and 0xffff are the same one's-complement value.
    CHECK(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
  }
  std::puts("ok incremental checksums");
}

static void conn_table_against_a_map() {
  // Random inserts and removals, both directions of every connection findable, checked
  // against std::unordered_map: exercises the backward-shift deletion.
  const uint32_t cap = 2000;
  ConnTable t(cap);
  std::unordered_map<uint64_t, Conn*> live;
  std::mt19937 rng(7);
  for (int step = 0; step < 200000; step++) {
    if (live.size() < cap && (rng() % 3 != 0 || live.empty())) {
      uint32_t caddr = 0x0a000000u | (rng() % 512);
      uint16_t cport = static_cast<uint16_t>(rng() % 64);
      uint64_t k = (uint64_t(caddr) << 16) | cport;
      if (live.count(k)) continue;
      Conn* c = t.allocate();
      CHECK(c);
      c->proto = 6;
      c->caddr = caddr, c->cport = cport, c->vaddr = 0x0a010064, c->vport = 80;
      // The reply key (server, local address and port) is unique per client key, as the
      // local-port pool makes it in the pipeline.
      c->laddr = 0x0a0200c8 + static_cast<uint32_t>(k >> 16 & 0x1ff), c->lport = static_cast<uint16_t>(1024 + cport);
      c->daddr = 0x0a02000b, c->dport = 8080;
      t.insert(c);
      live[k] = c;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      Conn* gone = it->second;
      FlowKey k0 = gone->key(0), k1 = gone->key(1);
      t.remove(gone);
      live.erase(it);
      int dir = -1;
      CHECK(t.lookup(k0, &dir) == nullptr && t.lookup(k1, &dir) == nullptr);
    }
    if (step % 1000 == 0)
      for (const auto& entry : live) {
        const Conn* c = entry.second;
        int dir = -1;
        CHECK(t.lookup(c->key(0), &dir) == c && dir == 0);
        CHECK(t.lookup(c->key(1), &dir) == c && dir == 1);
      }
  }
  CHECK(t.size() == live.size());
  std::puts("ok conn table against std::unordered_map");
}

static void tcp_states() {
  uint8_t s = kTcpNone;
  s = tcp_next_state(s, 0, true, false, false, false);
  CHECK(s == kTcpSynRecv);
  s = tcp_next_state(s, 1, true, false, true, false);
  CHECK(s == kTcpSynRecv);
  s = tcp_next_state(s, 0, false, false, true, false);
  CHECK(s == kTcpEstablished);
  s = tcp_next_state(s, 0, false, true, true, false);
  CHECK(s == kTcpCloseWait);
  s = tcp_next_state(s, 1, false, true, true, false);
  CHECK(s == kTcpTimeWait);
  std::puts("ok tcp states (IPVS table)");
}

// A TCP segment with checksum: options, SACK blocks at odd and even offsets, shifts and MSS
// clamping checked against a full recomputation after every change.
static void tcp_options_and_shifts() {
  std::mt19937 rng(7);
  const uint32_t sa = 0x0a010002, da = 0x0a010064;  // as stored (any order works for the sum)
  auto sum_ok = [&](const uint8_t* th, uint16_t len) { return l4_checksum_ok(sa, da, 6, th, len); };
  auto be32_at = [](const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  };
  for (int n = 0; n < 2000; n++) {
    uint8_t seg[60 + 16] = {};
    // Options: [NOP]x pad, MSS, SACK with 2 blocks, NOP, wscale, then End padding.
    uint32_t pad = rng() % 2;  // 0 puts the SACK edges on even offsets, 1 on odd ones
    uint8_t opts[40] = {};
    uint32_t o = 0;
    for (uint32_t i = 0; i < pad; i++) opts[o++] = tcp::kOptNop;
    uint16_t mss = static_cast<uint16_t>(536 + rng() % 9000);
    opts[o++] = tcp::kOptMss, opts[o++] = 4, opts[o++] = static_cast<uint8_t>(mss >> 8), opts[o++] = mss & 0xff;
    uint32_t sack_at = o;
    opts[o++] = tcp::kOptSack, opts[o++] = 18;
    for (int k = 0; k < 16; k++) opts[o++] = static_cast<uint8_t>(rng());
    opts[o++] = tcp::kOptWscale, opts[o++] = 3, opts[o++] = 7;
    uint32_t olen = (o + 3) & ~3u;
    uint32_t hl = 20 + olen;
    for (uint32_t i = 0; i < 4; i++) seg[4 + i] = static_cast<uint8_t>(rng());
    for (uint32_t i = 0; i < 4; i++) seg[8 + i] = static_cast<uint8_t>(rng());
    seg[12] = static_cast<uint8_t>((hl / 4) << 4);
    seg[13] = 0x10;  // ACK
    std::memcpy(seg + 20, opts, olen);
    uint16_t len = static_cast<uint16_t>(hl + 16);
    for (uint32_t i = hl; i < len; i++) seg[i] = static_cast<uint8_t>(rng());
    uint16_t c = l4_checksum(sa, da, 6, seg, len);
    std::memcpy(seg + 16, &c, 2);
    CHECK(sum_ok(seg, len));

    tcp::Options parsed = tcp::parse_options(seg);
    CHECK(parsed.valid && parsed.mss == mss && parsed.wscale == 7 && parsed.sack_blocks == 2);
    uint32_t seq = be32_at(seg + 4), ack = be32_at(seg + 8);
    uint32_t edge = be32_at(seg + 20 + sack_at + 2 + 4);
    uint32_t add = static_cast<uint32_t>(rng()), sub = static_cast<uint32_t>(rng());
    tcp::shift_sequence(seg, add, sub, seg + 16);
    CHECK(sum_ok(seg, len));
    CHECK(be32_at(seg + 4) == seq + add && be32_at(seg + 8) == ack - sub);
    CHECK(be32_at(seg + 20 + sack_at + 2 + 4) == edge - sub);
    CHECK(tcp::clamp_mss(seg, 1400, seg + 16) == (mss > 1400));
    CHECK(sum_ok(seg, len));
    CHECK(tcp::parse_options(seg).mss == (mss > 1400 ? 1400 : mss));
  }
  // Without ACK the acknowledgement and SACK edges stay as they are.
  uint8_t syn[24] = {};
  syn[12] = 6 << 4, syn[13] = 0x02, syn[20] = tcp::kOptMss, syn[21] = 4, syn[22] = 0x05, syn[23] = 0xb4;
  syn[8] = 0xaa;
  tcp::shift_sequence(syn, 1, 5, syn + 16);
  CHECK(syn[7] == 1 && syn[8] == 0xaa);
  // A malformed option space: length 1, or running past the header.
  uint8_t bad[28] = {};
  bad[12] = 7 << 4, bad[20] = tcp::kOptNop, bad[21] = tcp::kOptMss, bad[22] = 1;
  CHECK(!tcp::parse_options(bad).valid);
  bad[22] = 9;
  CHECK(!tcp::parse_options(bad).valid);
  CHECK(!tcp::clamp_mss(bad, 100, bad + 16));
  std::puts("ok tcp options and sequence shifts");
}

static void local_port_slices() {
  // Worker w of 3 hands out exactly the ports p % 3 == w of the range, and takes back only those.
  for (uint16_t w = 0; w < 3; w++) {
    LocalPortPool pool(1000, 1099, w, 3);
    std::vector<uint16_t> got;
    for (uint16_t p; (p = pool.acquire(7)) != 0;) got.push_back(p);
    CHECK(got.size() == (w == 1 ? 34u : 33u));  // 1000 % 3 == 1: worker 1 gets 1000 and 1099
    for (uint16_t p : got) CHECK(p % 3 == w && p >= 1000 && p <= 1099 && LocalPortPool::owner(p, 3) == w);
    pool.release(7, static_cast<uint16_t>(1000 + (w + 1) % 3));  // another worker's port: ignored
    CHECK(pool.acquire(7) == 0);
    pool.release(7, got.front());
    CHECK(pool.acquire(7) == got.front());
  }
  std::puts("ok local-port slices per worker");
}

static void redirect_ring_threads() {
  // Two producer threads (workers redirecting) and one consumer (the owner), concurrently:
  // every item arrives exactly once, and a full ring refuses instead of blocking.
  Ring ring("t", 64);
  CHECK(ring.capacity() == 64);
  constexpr uintptr_t kPer = 200000;
  std::vector<uint8_t> seen(2 * kPer + 1, 0);
  std::atomic<unsigned> refused{0};
  auto produce = [&](uintptr_t base) {
    for (uintptr_t i = 1; i <= kPer; i++) {
      void* item = reinterpret_cast<void*>(base + i);
      while (!ring.enqueue(item)) refused++;
    }
  };
  std::thread a(produce, 0), b(produce, kPer);
  uintptr_t received = 0;
  void* items[32];
  while (received < 2 * kPer) {
    unsigned n = ring.dequeue(items, 32);
    for (unsigned i = 0; i < n; i++) seen[reinterpret_cast<uintptr_t>(items[i])]++;
    received += n;
  }
  a.join();
  b.join();
  for (uintptr_t i = 1; i <= 2 * kPer; i++) CHECK(seen[i] == 1);
  CHECK(ring.size() == 0);
  std::vector<void*> many(100, reinterpret_cast<void*>(1));
  CHECK(ring.enqueue_burst(many.data(), 100) == 64);  // exactly its capacity, the rest refused
  std::puts("ok redirect ring across threads");
}

static void siphash_and_cookies() {
  // SipHash-2-4 reference vectors (the paper's appendix: key 00..0f, messages 00.., 0 and 15 bytes).
  uint8_t in[64];
  for (int i = 0; i < 64; i++) in[i] = static_cast<uint8_t>(i);
  const uint64_t k0 = 0x0706050403020100ull, k1 = 0x0f0e0d0c0b0a0908ull;
  CHECK(siphash24(k0, k1, in, 0) == 0x726fdb47dd0e0e31ull);  // vectors.h as little-endian words
  CHECK(siphash24(k0, k1, in, 15) == 0xa129ca6149be45e5ull);
  SynCookies c(1000);
  auto any = [](uint32_t) { return true; };
  uint32_t ck = c.make(1, 2, 3, 4, 100, 77, 500);
  CHECK(c.check(ck, 1, 2, 3, 4, 100, 900, any) == 77);
  CHECK(c.check(ck, 1, 2, 3, 4, 100, 1999, any) == 77);    // one epoch later
  CHECK(c.check(ck, 1, 2, 3, 4, 100, 2000, any) == -1);    // two: the secret is gone
  CHECK(c.check(ck, 1, 2, 3, 5, 100, 900, any) == -1);     // another 4-tuple
  CHECK(c.check(ck, 1, 2, 3, 4, 101, 900, any) == -1);     // another client ISN
  int passed = 0;
  for (uint32_t d = 1; d < 4096; d++) passed += c.check(ck + d, 1, 2, 3, 4, 100, 900, any) >= 0;
  // Neighbours of a cookie do not pass with other data: each of these 4,095 forgeries meets
  // 15 bits of MAC, so about 0.12 pass by chance (an additive data field, as Linux's, would
  // let ~every one through). "<= 1" failed about once in 150 runs (P(>= 2) ~ 0.7 %);
  // P(>= 5) is about 2e-7.
  CHECK(passed <= 4);
  std::puts("ok siphash and syn cookies");
}

int main() {
  plan_hash_vectors();
  incremental_checksums();
  conn_table_against_a_map();
  tcp_states();
  tcp_options_and_shifts();
  local_port_slices();
  redirect_ring_threads();
  siphash_and_cookies();
  return 0;
}
