// Servers taken out of service. A FULLNAT balancer is no TCP endpoint and cannot close a
// connection cleanly; as IPVS's expire_nodest_conn it ends it, but with a RST to *each*
// side, in that side's own sequence space (SYNPROXY's s2c_delta and an inserted PROXY
// header's c2s_delta make the two spaces differ), at the sequence number the side last
// acknowledged — and a second one where the other side's stream ends when that differs
// (data in flight, an ACK not seen yet). Then the connection and its local port are freed.
//
// Expire: expire_server() files a request; expire_walk() looks at a chunk of the table per
// loop iteration (as much as looking at 65,536 empty slots: about 0.4 ms) and resets
// the expired server's connections it meets, so the worker never stops forwarding for the
// whole table at once; a segment of one the walk has not reached yet ends it on arrival
// (expire_on_packet) rather than reaching the server. A request lasts one lap of the table,
// from wherever the cursor stands when it comes; requests under way share the cursor.
//
// Drain: the snapshot stops new connections (Dest::draining); drain_server() gives the
// worker's Dests of that server their timing, and a scan of the table (a chunk per sweep,
// in expire()) files each of their connections on the timer wheel at its drain time:
// last activity + idle, or the deadline, whichever comes first. Packets never move a timer
// (fullnat.cc schedule()), so the forwarding path pays nothing: when the tick comes,
// drain_expire() resets the connection or files it again at its new drain time.
#include <rte_ip.h>
#include <rte_tcp.h>

#include <algorithm>
#include <cstring>

#include "core/checksum.h"
#include "core/packet.h"
#include "core/pipeline.h"

namespace fulcrum {

using namespace pkt;

namespace {

void wr32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24), p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8), p[3] = static_cast<uint8_t>(v);
}
void wr16(uint8_t* p, uint16_t v) { p[0] = static_cast<uint8_t>(v >> 8), p[1] = static_cast<uint8_t>(v); }

}  // namespace

void Pipeline::server_failed(const Conn& c, const std::string& server, const char* reason, bool retried) {
  signals_.push_back(HealthSignal{c.svc->name, server, false, reason});
  // Always recorded (the health signal goes out for each failure anyway), within the same cap.
  if (conn_events_.size() >= cfg_.conn_events_max) {
    counters_[kCtr_conn_events_dropped]++;
    return;
  }
  ConnEvent e{false, c.caddr, c.cport, 0, c.svc->name, server};
  e.reason = reason;
  e.failed = true;
  e.retried = retried;
  conn_events_.push_back(std::move(e));
}

void Pipeline::send_reset(const Conn& c, int toward, uint32_t seq, bool has_ack, uint32_t ack, FrameSink& sink) {
  uint8_t f[60] = {};  // the Ethernet minimum; IP's total length says where the segment ends
  uint8_t* ip = f + kEth;
  uint8_t* th = ip + 20;
  uint32_t saddr, daddr;
  uint16_t sport, dport;
  if (toward == 0)
    saddr = c.vaddr, sport = c.vport, daddr = c.caddr, dport = c.cport;
  else
    saddr = c.laddr, sport = c.lport, daddr = c.daddr, dport = c.dport;
  f[12] = 0x08, f[13] = 0x00;
  ip[0] = 0x45;
  wr16(ip + 2, 40);
  wr16(ip + 6, RTE_IPV4_HDR_DF_FLAG);
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  wr32(ip + 12, saddr);
  wr32(ip + 16, daddr);
  ipv4_header_checksum_set(ip, 20);
  wr16(th, sport);
  wr16(th + 2, dport);
  wr32(th + 4, seq);
  wr32(th + 8, has_ack ? ack : 0);
  th[12] = 5 << 4;
  th[13] = RTE_TCP_RST_FLAG | (has_ack ? RTE_TCP_ACK_FLAG : 0);
  uint32_t sa, da;
  std::memcpy(&sa, ip + 12, 4);
  std::memcpy(&da, ip + 16, 4);
  uint16_t sum = l4_checksum(sa, da, IPPROTO_TCP, th, 20);
  std::memcpy(th + 16, &sum, 2);
  Verdict v = output(f, daddr, sink);
  if (v.action != Action::Transmit) return;
  sink.emit(v.port, f, sizeof f);
  counters_[kCtr_rst_sent]++;
  counters_[kCtr_tx_packets]++;
  counters_[kCtr_tx_bytes] += sizeof f;
}

uint32_t Pipeline::send_resets(const Conn& c, FrameSink& sink) {
  uint32_t n = 0;
  for (int toward = 0; toward < 2; toward++) {
    ResetPlan p = reset_plan(c, toward);
    if (!p.send) continue;
    send_reset(c, toward, p.first, p.has_ack, p.ack, sink);
    if (p.has_second) send_reset(c, toward, p.second, p.has_ack, p.ack, sink);
    n += p.has_second ? 2 : 1;
  }
  return n;
}

void Pipeline::reset_conn(Conn& c, const char* reason, FrameSink& sink) {
  // CLOSE (after a RST) and TIME_WAIT hold nothing a RST would end.
  if (c.proto == IPPROTO_TCP && c.state != kTcpClose && c.state != kTcpTimeWait && send_resets(c, sink) > 0)
    counters_[kCtr_conns_reset]++;
  end_conn(c, false, reason);
}

void Pipeline::expire_server(uint32_t id, const std::string& server) {
  expire_requests_.push_back(ExpireRequest{id, server, conns_.capacity(), {}});
}

bool Pipeline::expire_matches(const Conn& c) const {
  for (const ExpireRequest& r : expire_requests_) {
    if (c.svc->id != r.service || c.dest->key != r.server) continue;
    if (std::none_of(r.spared.begin(), r.spared.end(), [&c](const auto& d) { return d.get() == c.dest.get(); }))
      return true;
  }
  return false;
}

bool Pipeline::expire_walk(FrameSink& sink) {
  if (expire_requests_.empty()) return false;
  const uint32_t cap = conns_.capacity();
  const uint64_t budget = std::max<uint32_t>(1, cfg_.expire_chunk_slots);
  uint32_t longest = 0;  // no request needs more than its own lap
  for (const ExpireRequest& r : expire_requests_) longest = std::max(longest, r.left);
  uint32_t slots = 0;
  for (uint64_t spent = 0; spent < budget && slots < longest; spent++) {
    Conn& c = conns_.at(expire_cursor_);
    if (c.in_use) {
      spent += cfg_.expire_conn_cost;
      if (expire_matches(c)) {
        counters_[kCtr_conns_retired]++;
        reset_conn(c, "expire", sink);
        spent += cfg_.expire_reset_cost;
      }
    }
    expire_cursor_ = expire_cursor_ + 1 < cap ? expire_cursor_ + 1 : 0;
    slots++;
  }
  // A request whose lap this chunk completed is done (the slots past its lap were looked at
  // for the others: its connections there were already gone).
  for (ExpireRequest& r : expire_requests_) r.left -= std::min(r.left, slots);
  expire_requests_.erase(std::remove_if(expire_requests_.begin(), expire_requests_.end(),
                                        [](const ExpireRequest& r) { return r.left == 0; }),
                         expire_requests_.end());
  return !expire_requests_.empty();
}

bool Pipeline::expire_on_packet(Conn& c, int dir, const uint8_t* l4, uint32_t l4len, FrameSink& sink) {
  if (!expire_matches(c)) return false;
  if (c.proto == IPPROTO_TCP) {
    // One the window check refuses (forged, or long out of date) ends nothing and places
    // nothing: dropped as any such segment; the walk resets the connection when it gets there.
    if (out_of_window(c, dir, l4, l4len)) {
      drop(kCtr_drop_out_of_window);
      return true;
    }
    // Not forwarded: the sender's acknowledgement places its RST, its data goes nowhere.
    track_ack(c, dir, l4);
  }
  counters_[kCtr_conns_retired]++;
  counters_[kCtr_drop_conn_retired]++;
  reset_conn(c, "expire", sink);
  return true;
}

void Pipeline::expire_note_births(const Service* old, const Service& next) {
  for (ExpireRequest& r : expire_requests_) {
    if (r.service != next.id) continue;
    for (const auto& d : next.dests) {
      if (d->key != r.server) continue;
      bool known = old && std::any_of(old->dests.begin(), old->dests.end(),
                                      [&d](const auto& o) { return o.get() == d.get(); });
      if (!known) r.spared.push_back(d);
    }
  }
}

void Pipeline::drain_server(uint32_t id, const std::string& server, uint64_t idle_ms, uint64_t deadline_ms) {
  DrainRequest r{id, server, idle_ms, last_now_ + deadline_ms};
  auto it = services_.find(id);
  if (it != services_.end())
    for (const auto& d : it->second.svc->dests)
      if (d->key == server && !d->drain_timed) {
        d->drain_timed = true;
        d->drain_idle_ms = r.idle_ms;
        d->drain_deadline_at_ms = r.deadline_at_ms;
      }
  drain_requests_.push_back(std::move(r));
  drain_cursor_ = 0;  // (again) from the start: the scan looks for every request's connections
}

void Pipeline::drain_forget_serving(const Service& svc) {
  drain_requests_.erase(std::remove_if(drain_requests_.begin(), drain_requests_.end(),
                                       [&svc](const DrainRequest& r) {
                                         if (r.service != svc.id) return false;
                                         for (const auto& d : svc.dests)
                                           if (d->key == r.server && d->serving) return true;
                                         return false;
                                       }),
                        drain_requests_.end());
}

uint64_t Pipeline::drain_due(const Conn& c) const {
  const Dest& d = *c.dest;
  // A packet sets expires_ms to now + its state's timeout: the last activity is read back from it.
  uint64_t timeout = c.proto == IPPROTO_TCP ? cfg_.timeouts.tcp_ms[c.state] : cfg_.timeouts.udp_ms[c.state];
  uint64_t last = c.expires_ms > timeout ? c.expires_ms - timeout : 0;
  return std::min(last + d.drain_idle_ms, d.drain_deadline_at_ms);
}

void Pipeline::file_at(Conn& c, uint64_t at_ms) {
  int64_t tick = std::max(static_cast<int64_t>(at_ms / kTickMs), last_tick_);
  if (c.wheel_tick >= 0 && c.wheel_tick <= tick) return;
  c.wheel_tick = tick;
  wheel_[static_cast<uint64_t>(tick) % kWheelSlots].push_back({conns_.index_of(&c), c.gen, tick});
}

void Pipeline::drain_scan(FrameSink&) {
  uint32_t end = std::min(conns_.capacity(), drain_cursor_ + kDrainScanChunk);
  for (; drain_cursor_ < end; drain_cursor_++) {
    Conn& c = conns_.at(drain_cursor_);
    if (!c.in_use) continue;
    Dest& d = *c.dest;
    if (!d.drain_timed)
      for (const DrainRequest& r : drain_requests_)
        if (c.svc->id == r.service && d.key == r.server) {
          d.drain_timed = true;  // a Dest the snapshot no longer lists (a removed server's)
          d.drain_idle_ms = r.idle_ms;
          d.drain_deadline_at_ms = r.deadline_at_ms;
          break;
        }
    if (d.drain_timed) file_at(c, drain_due(c));
  }
  if (drain_cursor_ >= conns_.capacity()) {
    drain_requests_.clear();
    drain_cursor_ = 0;
  }
}

bool Pipeline::drain_expire(Conn& c, uint64_t now_ms, FrameSink& sink) {
  uint64_t due = drain_due(c);
  if (due > now_ms) {
    c.wheel_tick = -1;
    file_at(c, std::min(due, c.expires_ms));
    return false;
  }
  bool deadline = now_ms >= c.dest->drain_deadline_at_ms;
  counters_[deadline ? kCtr_conns_drain_deadline : kCtr_conns_drain_idle]++;
  reset_conn(c, deadline ? "drain-deadline" : "drain-idle", sink);
  return true;
}

}  // namespace fulcrum
