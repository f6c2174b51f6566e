// SYNPROXY, the Pipeline's part (DPVS ip_vs_synproxy.c's three steps, written anew):
//  1. client SYN → the frame becomes a SYN-ACK whose sequence number is a cookie; no state.
//  2. client ACK with a valid cookie → a connection (plan pick as FULLNAT), the ACK kept, and
//     the frame becomes the server's SYN with the options the cookie brought back.
//  3. server SYN-ACK → the kept client frames replayed (the first completes the server's
//     handshake), the SYN-ACK turned into the window update the client waits for (the
//     cookie SYN-ACK offered a zero window, as DPVS), and s2c_delta set for good.
// A server that refuses (RST) or stays silent after rs_syn_max_retry retransmissions is a
// passive-health failure, and the handshake moves to another server when one is left.
#include <rte_ip.h>
#include <rte_tcp.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "core/checksum.h"
#include "core/packet.h"
#include "core/pipeline.h"
#include "core/tcp.h"

namespace fulcrum {

using namespace pkt;

namespace {

// MSS values a cookie can name (3 bits): common path MTUs, DPVS's 1452 among them.
constexpr uint16_t kMssTable[8] = {536, 1220, 1300, 1360, 1400, 1440, 1452, 1460};

// Cookie data (9 bits): MSS index (0-2), timestamps (3); without timestamps also SACK (4)
// and the client's window scale + 1 (5-8, 0 = none). With timestamps those two ride in the
// low 5 bits of the SYN-ACK's TSval instead, as Linux does. A random ACK passes with
// probability about 2^-20 with timestamps, 2^-15 without (data values made / 2^24).
constexpr uint32_t kDataTs = 1u << 3;
bool data_valid(uint32_t d) { return d < 512 && (!(d & kDataTs) || d < 16); }
uint32_t opts5(bool sack, int8_t wscale) { return (sack ? 16u : 0u) | static_cast<uint32_t>(wscale + 1); }

uint32_t rd32(const uint8_t* p) { return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3]; }
void wr32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24), p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8), p[3] = static_cast<uint8_t>(v);
}
void wr16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v >> 8), p[1] = static_cast<uint8_t>(v); }

// Writes the options of a SYN or SYN-ACK, 4-byte aligned with NOPs; returns their length.
uint32_t write_syn_options(uint8_t* o, uint16_t mss, bool sack, bool ts, uint32_t tsval, uint32_t tsecr,
                           int8_t wscale) {
  uint32_t n = 0;
  o[n++] = tcp::kOptMss, o[n++] = 4, wr16(o + n, mss), n += 2;
  if (ts) {
    o[n++] = sack ? tcp::kOptSackPermitted : tcp::kOptNop;
    o[n++] = sack ? 2 : tcp::kOptNop;
    o[n++] = tcp::kOptTimestamp, o[n++] = 10;
    wr32(o + n, tsval), wr32(o + n + 4, tsecr), n += 8;
  } else if (sack) {
    o[n++] = tcp::kOptNop, o[n++] = tcp::kOptNop, o[n++] = tcp::kOptSackPermitted, o[n++] = 2;
  }
  if (wscale >= 0) o[n++] = tcp::kOptNop, o[n++] = tcp::kOptWscale, o[n++] = 3, o[n++] = static_cast<uint8_t>(wscale);
  return n;
}

// Sets the TCP header length to 20 + `optlen` (options already written after it), the IP
// total length, and both checksums in full. Returns the new frame length.
uint32_t finish_segment(uint8_t* frame, uint32_t ihl, uint32_t optlen) {
  uint8_t* ip = frame + kEth;
  uint8_t* th = ip + ihl;
  uint32_t tcplen = 20 + optlen;
  th[12] = static_cast<uint8_t>((tcplen / 4) << 4);
  th[16] = th[17] = 0;
  th[18] = th[19] = 0;  // urgent pointer
  wr16(ip + 2, static_cast<uint16_t>(ihl + tcplen));
  ipv4_header_checksum_set(ip, ihl);
  uint32_t sa, da;
  std::memcpy(&sa, ip + 12, 4);
  std::memcpy(&da, ip + 16, 4);
  uint16_t c = l4_checksum(sa, da, IPPROTO_TCP, th, static_cast<uint16_t>(tcplen));
  std::memcpy(th + 16, &c, 2);
  return kEth + ihl + tcplen;
}

bool in_plan(const Plan& p, size_t i) {
  switch (p.kind) {
    case PlanKind::Sequence:
      return std::find(p.sequence.begin(), p.sequence.end(), static_cast<int32_t>(i)) != p.sequence.end();
    case PlanKind::Hash:
      return std::find(p.table.begin(), p.table.end(), static_cast<int32_t>(i)) != p.table.end();
    case PlanKind::LeastConnections:
      return i < p.weights.size() && p.weights[i] > 0;
  }
  return false;
}

}  // namespace

bool Pipeline::synproxy_input(uint16_t in_port, uint8_t* frame, uint8_t* ip, uint32_t ihl, Conn*& c, int& dir,
                              uint64_t now_ms, FrameSink& sink, Verdict& v) {
  uint8_t* th = ip + ihl;
  const uint8_t f = th[13];
  const bool syn = f & RTE_TCP_SYN_FLAG, ack = f & RTE_TCP_ACK_FLAG, rst = f & RTE_TCP_RST_FLAG,
             fin = f & RTE_TCP_FIN_FLAG;
  v = Verdict{Action::Drop, 0};
  if (!c) {
    auto it = by_vip_.find(svc_key(IPPROTO_TCP, rd32(ip + 16), static_cast<uint16_t>((th[2] << 8) | th[3])));
    if (it == by_vip_.end() || !services_[it->second].svc->synproxy) return false;
    if (syn && !ack && !rst) {
      v = synproxy_cookie(frame, ip, ihl, now_ms, sink);
      return true;
    }
    if (!ack || syn || rst || fin) return false;  // FULLNAT drops it: no connection
    if (cfg_.synproxy.defer_rs_syn && static_cast<uint32_t>((ip[2] << 8) | ip[3]) == ihl + tcp::header_len(th)) {
      drop(kCtr_synproxy_ack_deferred);  // no data yet: nothing opens, nothing is kept
      return true;
    }
    bool miss = false;
    c = synproxy_open(services_[it->second], frame, ip, ihl, now_ms, miss);
    if (!c) {
      if (miss) v = Verdict{Action::Miss, kCtr_synproxy_bad_cookie};  // its connection, or its cookie, may be another worker's
      return true;
    }
    dir = 0;
    set_state(*c, kTcpSynSent, now_ms);
    c->dest->in_pkts++;
    c->dest->in_bytes += (ip[2] << 8) | ip[3];
    v = forward(*c, 0, frame, sink);
    if (v.action == Action::Transmit) v.len = kEth + ((ip[2] << 8) | ip[3]);
    return true;
  }
  if (c->sp_state == 0) return false;
  if (dir == 0 && syn && !ack && !rst) {
    if (!((cfg_.synproxy.reuse_states >> c->state) & 1)) {
      drop(kCtr_synproxy_syn_dropped);  // a SYN inside a live connection
      return true;
    }
    end_conn(*c, false);  // DPVS conn_reuse_state: the 4-tuple starts over
    c = nullptr;
    counters_[kCtr_synproxy_conn_reused]++;
    v = synproxy_cookie(frame, ip, ihl, now_ms, sink);
    return true;
  }
  if (c->sp_state == 1) return synproxy_opening(*c, dir, frame, ip, ihl, now_ms, sink, v);
  // Open: the ACK-storm filter on the server's pure ACKs (DPVS ack_storm_thresh).
  if (dir == 1 && !syn && !fin && !rst) {
    uint32_t total = (ip[2] << 8) | ip[3];
    uint32_t seq = rd32(th + 4), acked = rd32(th + 8);
    bool pure = total == ihl + tcp::header_len(th);
    if (pure && seq == c->sp_last_seq && acked == c->sp_last_ack) {
      if (++c->sp_dup_acks > cfg_.synproxy.ack_storm_thresh) {
        drop(kCtr_synproxy_ack_storm);
        return true;
      }
    } else {
      c->sp_last_seq = seq, c->sp_last_ack = acked, c->sp_dup_acks = 0;
    }
  }
  return false;
}

// Step 1: the SYN becomes the cookie SYN-ACK, in place.
Verdict Pipeline::synproxy_cookie(uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms, FrameSink& sink) {
  const SynproxyConfig& cfg = cfg_.synproxy;
  uint8_t* th = ip + ihl;
  tcp::Options o = tcp::parse_options(th);
  if (!o.valid || kEth + ihl + 20 + 24 > room_) {
    drop(kCtr_synproxy_syn_dropped);
    return Verdict{Action::Drop, 0};
  }
  uint16_t mss = std::min<uint16_t>(o.mss ? o.mss : 536, cfg.mss);
  uint32_t idx = 0;
  while (idx + 1 < 8 && kMssTable[idx + 1] <= mss) idx++;
  const bool sack = cfg.sack && o.sack_permitted, ts = cfg.timestamp && o.timestamp;
  const int8_t ws = cfg.wscale >= 0 && o.wscale >= 0 ? o.wscale : -1;
  uint32_t data = idx | (ts ? kDataTs : (sack ? 16u : 0u) | (static_cast<uint32_t>(ws + 1) << 5));
  uint32_t saddr = rd32(ip + 12), daddr = rd32(ip + 16);
  uint16_t sport = static_cast<uint16_t>((th[0] << 8) | th[1]), dport = static_cast<uint16_t>((th[2] << 8) | th[3]);
  uint32_t isn = rd32(th + 4);
  uint32_t cookie = cookies_.make(saddr, daddr, sport, dport, isn, data, now_ms);
  uint32_t tsval = (static_cast<uint32_t>(now_ms) & ~31u) | opts5(sack, ws);
  uint32_t optlen = write_syn_options(th + 20, cfg.mss, sack, ts, tsval, o.ts_val, ws >= 0 ? cfg.wscale : -1);
  std::memcpy(ip + 12, ip + 16, 4);
  wr32(ip + 16, saddr);
  th[0] = th[2], th[1] = th[3];
  wr16(th + 2, sport);
  wr32(th + 4, cookie);
  wr32(th + 8, isn + 1);
  th[13] = RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG;
  // A zero window: the client waits for the server's own (DPVS close_client_window), unless
  // the server is opened by the client's data (defer_rs_syn): then the client's own window.
  if (!cfg.defer_rs_syn) wr16(th + 14, 0);
  ip[1] = 0;         // TOS
  wr16(ip + 4, 0);   // IP id
  wr16(ip + 6, RTE_IPV4_HDR_DF_FLAG);
  ip[8] = cfg.ttl;
  uint32_t len = finish_segment(frame, ihl, optlen);
  counters_[kCtr_synproxy_syn_answered]++;
  Verdict v = output(frame, saddr, sink);
  if (v.action == Action::Transmit) v.len = len;
  return v;
}

// Step 2: a valid cookie opens the connection; the ACK is kept and the frame becomes the SYN.
Conn* Pipeline::synproxy_open(ServiceState& st, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms,
                              bool& miss) {
  uint8_t* th = ip + ihl;
  tcp::Options o = tcp::parse_options(th);
  uint32_t saddr = rd32(ip + 12), daddr = rd32(ip + 16);
  uint16_t sport = static_cast<uint16_t>((th[0] << 8) | th[1]), dport = static_cast<uint16_t>((th[2] << 8) | th[3]);
  uint32_t seq = rd32(th + 4), acked = rd32(th + 8);
  int64_t data = o.valid ? cookies_.check(acked - 1, saddr, daddr, sport, dport, seq - 1, now_ms, data_valid) : -1;
  const bool ts = data >= 0 && (data & kDataTs);
  if (data < 0 || (ts && !o.timestamp)) {
    if (cfg_.workers > 1) {
      miss = true;  // each worker has its own secret, and connections live on one worker
      return nullptr;
    }
    drop(kCtr_synproxy_bad_cookie);
    return nullptr;
  }
  uint32_t packed = ts ? (o.ts_ecr & 31u) : static_cast<uint32_t>(data >> 4);
  const bool sack = packed & 1u << (ts ? 4 : 0);
  const int8_t ws = static_cast<int8_t>((ts ? packed & 15u : packed >> 1) - 1);
  uint32_t total = (ip[2] << 8) | ip[3];
  if (kEth + ihl + 20 + 24 > room_) {
    drop(kCtr_synproxy_syn_dropped);
    return nullptr;
  }
  Conn* c = new_conn(st, saddr, sport, now_ms);
  if (!c) return nullptr;
  counters_[kCtr_synproxy_ack_valid]++;
  c->sp_state = 1;
  c->sp_isn = acked - 1;
  c->sp_client_isn = seq - 1;
  c->sp_ts = ts;
  c->sp_hs = std::make_unique<SynproxyHandshake>();
  track_segment(*c, 0, th, total - ihl);  // core/track.h: the client acknowledged the cookie
  c->sp_hs->saved.emplace_back(frame, frame + kEth + total);
  counters_[kCtr_synproxy_ack_saved]++;
  // The server's SYN: the client's ISN and options; the TSval is the client's own clock.
  uint32_t window = (static_cast<uint32_t>(th[14]) << 8 | th[15]) << (ws > 0 ? ws : 0);
  uint32_t optlen = write_syn_options(th + 20, kMssTable[data & 7], sack, ts, o.ts_val, 0, ws);
  wr32(th + 4, seq - 1);
  wr32(th + 8, 0);
  th[13] = RTE_TCP_SYN_FLAG;
  wr16(th + 14, static_cast<uint16_t>(std::min<uint32_t>(window, 65535)));
  uint32_t len = finish_segment(frame, ihl, optlen);
  c->sp_hs->syn.assign(frame, frame + len);
  return c;
}

// While the server is being opened: client frames are kept, the server's answer decides.
bool Pipeline::synproxy_opening(Conn& c, int dir, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms,
                                FrameSink& sink, Verdict& v) {
  const SynproxyConfig& cfg = cfg_.synproxy;
  uint8_t* th = ip + ihl;
  const uint8_t f = th[13];
  const bool syn = f & RTE_TCP_SYN_FLAG, ack = f & RTE_TCP_ACK_FLAG, rst = f & RTE_TCP_RST_FLAG;
  v = Verdict{Action::Drop, 0};
  if (dir == 0) {
    if (rst) {
      counters_[kCtr_synproxy_client_reset]++;
      end_conn(c, false);  // the server has only a SYN: let its half-open entry time out
    } else if (syn || !ack || rd32(th + 8) != c.sp_isn + 1) {
      drop(kCtr_synproxy_out_of_window);
    } else if (c.sp_hs->saved.size() >= cfg.max_ack_saved) {
      drop(kCtr_synproxy_ack_saved_overflow);
    } else {
      uint32_t total = (ip[2] << 8) | ip[3];
      c.sp_hs->saved.emplace_back(frame, frame + kEth + total);
      counters_[kCtr_synproxy_ack_saved]++;
    }
    return true;
  }
  if (rst) {
    counters_[kCtr_synproxy_rs_refused]++;
    c.answered = true;
    std::string refused = c.dest->key;
    bool retried = synproxy_retry(c, now_ms, sink);
    server_failed(c, refused, "refused", retried);
    if (retried) return true;
    // Nowhere else to go: the client gets the RST, in its sequence space.
    c.s2c_delta = c.sp_isn + 1 - rd32(th + 4);
    c.sp_state = 2;
    c.sp_hs.reset();
    set_state(c, kTcpClose, now_ms);
    v = forward(c, 1, frame, sink);
    return true;
  }
  if (!syn || !ack || rd32(th + 8) != c.sp_client_isn + 1) {
    drop(kCtr_synproxy_out_of_window);
    return true;
  }
  // Step 3. The client's clock in TSecr of the kept ACK is the cookie SYN-ACK's TSval.
  track_segment(c, 1, th, ((ip[2] << 8) | ip[3]) - ihl);  // core/track.h: the server's window state
  tcp::Options so = tcp::parse_options(th);
  c.s2c_delta = c.sp_isn - rd32(th + 4);
  if (c.sp_ts) {
    const auto& first = c.sp_hs->saved.front();
    tcp::Options co = tcp::parse_options(first.data() + kEth + (first[kEth] & 0x0f) * 4u);
    if (so.timestamp) c.ts_delta = so.ts_val - co.ts_ecr;
    c.sp_ts = so.timestamp;  // a server without timestamps: nothing to translate
  }
  c.answered = true;
  signals_.push_back(HealthSignal{c.svc->name, c.dest->key, true, "answered"});
  set_state(c, kTcpEstablished, now_ms);
  c.sp_state = 2;
  insert_server_synack(c, rd32(th + 4));  // TOA/PROXY insertion: the ACKs below complete the handshake
  for (const auto& saved : c.sp_hs->saved) synproxy_send(c, 0, saved, sink);
  // A SYN-ACK's window is never scaled; the ACK's is, by the shift the cookie SYN-ACK offered
  // (which the servers' own must equal: synackOptions.wscale).
  const auto& ours = c.sp_hs->syn;
  bool scaled = tcp::parse_options(ours.data() + kEth + (ours[kEth] & 0x0f) * 4u).wscale >= 0;
  c.sp_hs.reset();
  if (scaled && cfg.wscale > 0) {
    uint32_t w = (static_cast<uint32_t>(th[14]) << 8 | th[15]) >> cfg.wscale;
    wr16(th + 14, static_cast<uint16_t>(w ? w : 1));
  }
  // The SYN-ACK becomes the client's window update: an ACK one past the SYN, timestamps kept.
  uint32_t optlen = 0;
  if (so.timestamp) {
    uint8_t* o = th + 20;
    o[0] = o[1] = tcp::kOptNop, o[2] = tcp::kOptTimestamp, o[3] = 10;
    wr32(o + 4, so.ts_val), wr32(o + 8, so.ts_ecr);
    optlen = 12;
  }
  wr32(th + 4, rd32(th + 4) + 1);
  th[13] = RTE_TCP_ACK_FLAG;
  uint32_t len = finish_segment(frame, ihl, optlen);
  v = forward(c, 1, frame, sink);
  if (v.action == Action::Transmit) v.len = len;
  return true;
}

// Moves a handshake to a server not tried yet; false when retrying is off or none is left.
bool Pipeline::synproxy_retry(Conn& c, uint64_t now_ms, FrameSink& sink) {
  if (!cfg_.synproxy.retry_other_server || !c.sp_hs) return false;
  auto sit = services_.find(c.svc->id);
  if (sit == services_.end()) return false;
  ServiceState& st = sit->second;
  const Service& svc = *st.svc;
  for (size_t i = 0; i < svc.dests.size() && i < 64; i++)
    if (svc.dests[i] == c.dest) c.sp_hs->tried |= 1ull << i;
  auto usable = [&](int64_t i) {
    return i >= 0 && static_cast<size_t>(i) < svc.dests.size() && i < 64 && !((c.sp_hs->tried >> i) & 1) &&
           !svc.dests[i]->draining;
  };
  uint8_t src[4], dst[4];
  uint32_t sbe = rte_cpu_to_be_32(c.caddr), dbe = rte_cpu_to_be_32(c.vaddr);
  std::memcpy(src, &sbe, 4);
  std::memcpy(dst, &dbe, 4);
  HashTuple t{src, 4, c.cport, dst, 4, c.vport};
  int64_t pick = -1;
  for (size_t k = 0; k < svc.dests.size() && pick < 0; k++) {
    int32_t i = plan_pick(svc.plan, st.cursor, t, [&svc](size_t j) {
      const Dest* d = j < svc.dests.size() ? svc.dests[j].get() : nullptr;
      return d ? d->load() : ServerLoad{0, 0};
    });
    if (usable(i)) pick = i;
  }
  // A hash plan names one server per client: take the next server the plan uses.
  for (size_t i = 0; i < svc.dests.size() && pick < 0; i++)
    if (usable(static_cast<int64_t>(i)) && in_plan(svc.plan, i)) pick = static_cast<int64_t>(i);
  if (pick < 0) return false;
  const auto& d = svc.dests[pick];
  c.dest->add_inactive(-1);
  d->add_inactive(1);
  d->conns++;
  conns_.rekey_server(&c, d->addr, d->port);
  c.dest = d;
  c.answered = false;
  c.sp_hs->retries = 0;
  counters_[kCtr_synproxy_rs_retried]++;
  set_state(c, kTcpSynSent, now_ms);
  synproxy_send(c, 0, c.sp_hs->syn, sink);
  return true;
}

bool Pipeline::synproxy_expire(Conn& c, uint64_t now_ms, FrameSink& sink) {
  if (!c.sp_hs) return false;
  c.wheel_tick = -1;  // re-filed below, or ended by the caller
  if (c.sp_hs->retries < cfg_.synproxy.rs_syn_max_retry) {
    c.sp_hs->retries++;
    counters_[kCtr_synproxy_rs_syn_retransmits]++;
    set_state(c, kTcpSynSent, now_ms);
    synproxy_send(c, 0, c.sp_hs->syn, sink);
    return true;
  }
  counters_[kCtr_synproxy_rs_timeout]++;
  c.answered = true;  // signalled here: end_conn must not signal again
  std::string silent = c.dest->key;
  bool retried = synproxy_retry(c, now_ms, sink);
  server_failed(c, silent, "timeout", retried);
  return retried;
}

// Sends a copy of a kept frame (client space) through FULLNAT, ahead of the burst, in a
// buffer with an mbuf's room so that what forward() inserts (TOA, a PROXY header) fits.
void Pipeline::synproxy_send(Conn& c, int dir, const std::vector<uint8_t>& frame, FrameSink& sink) {
  std::vector<uint8_t> buf(std::max<size_t>(frame.size(), 2048));
  std::copy(frame.begin(), frame.end(), buf.begin());
  uint32_t room = room_;
  room_ = static_cast<uint32_t>(buf.size());
  Verdict v = forward(c, dir, buf.data(), sink);
  room_ = room;
  if (v.action != Action::Transmit) return;
  uint32_t len = v.len ? v.len : static_cast<uint32_t>(frame.size());
  sink.emit(v.port, buf.data(), len);
  counters_[kCtr_tx_packets]++;
  counters_[kCtr_tx_bytes] += len;
}

// The server's TSval is moved into the clock the cookie SYN-ACK showed the client (and the
// client's TSecr back), so the client's PAWS check sees one monotonic clock (as Linux's
// nf_synproxy does; DPVS leaves timestamps alone, which is why its default is off).
void Pipeline::synproxy_timestamps(Conn& c, int dir, uint8_t* th, uint8_t* check) {
  if (!c.ts_delta) return;
  if (dir == 1)
    tcp::shift_timestamp(th, 0u - c.ts_delta, 0, check);
  else
    tcp::shift_timestamp(th, 0, c.ts_delta, check);
}

}  // namespace fulcrum
