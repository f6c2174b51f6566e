// SYNPROXY (DPVS ip_vs_synproxy behaviour): the balancer answers a client's SYN itself with
// a SYN cookie and opens the server connection only once the client's ACK returns a valid
// cookie, so a SYN flood reaches no server and costs no connection state. Sequence numbers
// (and timestamps) are translated for the rest of the connection. The Pipeline's SYNPROXY
// members live in synproxy.cc; this header holds what they share with the rest of the core.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace fulcrum {

// `dataplane.options.synproxy` (DPVS's ipvs_defs/tcp/synproxy items, same defaults).
struct SynproxyConfig {
  uint16_t mss = 1452;      // synack_options.mss: advertised to clients, and the most the server is told
  uint8_t ttl = 63;         // synack_options.ttl
  bool sack = true;         // synack_options.sack
  int8_t wscale = -1;       // synack_options.wscale: the shift advertised, -1 = not offered
  bool timestamp = false;   // synack_options.timestamp
  uint32_t max_ack_saved = 3;
  uint32_t rs_syn_max_retry = 3;
  uint32_t ack_storm_thresh = 10;
  uint32_t reuse_states = (1u << 6) | (1u << 5);  // conn_reuse_state: bits by TcpState (CLOSE, TIME_WAIT)
  uint64_t secret_rotate_ms = 60000;              // the cookie secret and time counter step
  bool retry_other_server = true;                 // beyond DPVS: a refusing server is replaced, not reset
  // defer_rs_syn: a valid cookie ACK without data opens nothing (dropped, no state); the
  // client's first data segment, whose ACK still carries the cookie, opens the server.
  // The cookie SYN-ACK then offers the client's own window instead of a zero one.
  bool defer_rs_syn = false;
};

// A handshake toward the server in progress: what the balancer holds until the server's SYN-ACK.
struct SynproxyHandshake {
  std::vector<std::vector<uint8_t>> saved;  // client frames as received (the ACK first), at most max_ack_saved
  std::vector<uint8_t> syn;                 // the SYN for the server, before FULLNAT (for retransmissions)
  uint64_t tried = 0;                       // plan indices of servers that refused or never answered
  uint32_t retries = 0;                     // SYN retransmissions to the current server
};

// The options a cookie brings back from the client's SYN, as the SYN-ACK accepted them.
struct CookieOptions {
  uint16_t mss = 536;
  bool sack = false;
  int8_t wscale = -1;
  bool timestamp = false;
};

// SYN cookies after D. J. Bernstein's construction, keyed with SipHash-2-4 under a secret
// replaced every `rotate_ms`; the time counter is the secret's epoch, so a cookie lives one
// to two epochs. cookie = H(tuple) + isn + (epoch << 24) + (H(tuple, epoch, data) << 9 | data)
// with 9 bits of data in clear and 15 bits of hash over them: unlike an additive data field
// (Linux, DPVS), a cookie plus a small number does not pass with other options.
class SynCookies {
 public:
  static constexpr uint32_t kDataBits = 9;
  explicit SynCookies(uint64_t rotate_ms = 60000) : rotate_ms_(rotate_ms ? rotate_ms : 1) {}
  uint32_t make(uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint32_t isn, uint32_t data,
                uint64_t now_ms);
  // The data of a valid cookie, or -1. `valid(data)` rejects data the caller never makes.
  template <typename Valid>
  int64_t check(uint32_t cookie, uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport, uint32_t isn,
                uint64_t now_ms, Valid valid) {
    int64_t epoch = static_cast<int64_t>(now_ms / rotate_ms_);
    for (int64_t e = epoch; e >= epoch - 1 && e >= 0; e--) {
      const Key& k = keys_[e & 1];
      if (k.epoch != e) continue;  // that epoch's secret was replaced (or never drawn)
      uint32_t v = cookie - hash(k, saddr, daddr, sport, dport, 0, 0) - isn;
      if ((v >> 24) != (static_cast<uint32_t>(e) & 0xff)) continue;
      uint32_t data = v & ((1u << kDataBits) - 1);
      if (!valid(data)) continue;
      uint32_t mac = hash(k, saddr, daddr, sport, dport, static_cast<uint32_t>(e), data);
      if (((v & 0xffffff) >> kDataBits) == (mac & (0xffffffu >> kDataBits))) return data;
    }
    return -1;
  }

 private:
  struct Key {
    uint64_t k0 = 0, k1 = 0;
    int64_t epoch = -1;
  };
  static uint32_t hash(const Key& k, uint32_t saddr, uint32_t daddr, uint16_t sport, uint16_t dport,
                       uint32_t count, uint32_t data);
  Key keys_[2];
  uint64_t rotate_ms_;
};

// SipHash-2-4 of `len` bytes under (k0, k1), written from the paper (Aumasson, Bernstein 2012).
uint64_t siphash24(uint64_t k0, uint64_t k1, const uint8_t* data, size_t len);

}  // namespace fulcrum
