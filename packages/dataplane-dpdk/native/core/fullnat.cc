// The FULLNAT half of the pipeline: connection lookup and creation, the address and port
// rewrite with incremental checksums, TCP/UDP state and the timer wheel.
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

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
// The flow of a TCP or UDP segment as the connection table keys it (ports at the same
// offsets in both); prefetch() and handle_l4() take it from the same bytes.
inline __attribute__((always_inline)) FlowKey flow_key(const uint8_t* ip, uint32_t ihl) {
  uint32_t sa, da;
  std::memcpy(&sa, ip + 12, 4);
  std::memcpy(&da, ip + 16, 4);
  return FlowKey{be32(sa), be32(da), be16(load16(ip + ihl)), be16(load16(ip + ihl + 2)), ip[9]};
}
}  // namespace

uint64_t Pipeline::prefetch(const uint8_t* frame, uint32_t len) const {
  if (len < kEth + 20 || load16(frame + 12) != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4)) return 0;
  const uint8_t* ip = frame + kEth;
  const uint32_t ihl = (ip[0] & 0x0f) * 4u;
  if ((ip[9] != IPPROTO_TCP && ip[9] != IPPROTO_UDP) || ihl < 20 || len < kEth + ihl + 4) return 0;
  const uint32_t h = ConnTable::hash(flow_key(ip, ihl));
  conns_.prefetch_slot(h);
  return (uint64_t{1} << 32) | h;
}

Verdict Pipeline::handle_l4(uint16_t in_port, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint32_t total,
                            uint64_t now_ms, FrameSink& sink, uint64_t hint) {
  const Verdict dropped{Action::Drop, 0};
  auto* iph = reinterpret_cast<rte_ipv4_hdr*>(ip);
  uint8_t proto = iph->next_proto_id;
  uint8_t* l4 = ip + ihl;
  uint32_t l4len = total - ihl;
  uint8_t* check = nullptr;  // the TCP/UDP checksum field, when there is one
  bool syn = false, fin = false, ack = false, rst = false;
  if (proto == IPPROTO_TCP) {
    auto* th = reinterpret_cast<rte_tcp_hdr*>(l4);
    if (l4len < sizeof(rte_tcp_hdr) || (th->data_off >> 4) * 4u < 20 || (th->data_off >> 4) * 4u > l4len) {
      drop(kCtr_drop_truncated);
      return dropped;
    }
    check = l4 + offsetof(rte_tcp_hdr, cksum);
    syn = th->tcp_flags & RTE_TCP_SYN_FLAG;
    fin = th->tcp_flags & RTE_TCP_FIN_FLAG;
    ack = th->tcp_flags & RTE_TCP_ACK_FLAG;
    rst = th->tcp_flags & RTE_TCP_RST_FLAG;
  } else {
    auto* uh = reinterpret_cast<rte_udp_hdr*>(l4);
    if (l4len < sizeof(rte_udp_hdr) || be16(uh->dgram_len) < 8 || be16(uh->dgram_len) > l4len) {
      drop(kCtr_drop_truncated);
      return dropped;
    }
    l4len = be16(uh->dgram_len);
    check = uh->dgram_cksum != 0 ? l4 + offsetof(rte_udp_hdr, dgram_cksum) : nullptr;
  }
  const FlowKey key = flow_key(ip, ihl);
  int dir = 0;
  Conn* c = conns_.lookup(key, hint ? static_cast<uint32_t>(hint) : ConnTable::hash(key), &dir);
  if (!c && !owns(in_port, key.daddr)) {
    drop(kCtr_drop_not_ours);
    return dropped;
  }
  if (check && !l4_checksum_ok(iph->src_addr, iph->dst_addr, proto, l4, static_cast<uint16_t>(l4len))) {
    drop(kCtr_drop_bad_l4_checksum);
    return dropped;
  }
  // An expire walking the table: a segment of a connection it has not reached yet ends that
  // connection now, instead of reaching the expired server (core/drain.cc).
  if (c && !expire_requests_.empty() && expire_on_packet(*c, dir, l4, l4len, sink)) return dropped;
  // SYNPROXY sees every segment without a connection and those of its own connections
  // (sp_state != 0); a plain FULLNAT connection's segments skip the call.
  if (proto == IPPROTO_TCP && (!c || c->sp_state != 0)) {
    Verdict v{Action::Drop, 0};
    if (synproxy_input(in_port, frame, ip, ihl, c, dir, now_ms, sink, v)) return v;  // SYNPROXY
  }
  if (!c) {
    auto it = by_vip_.find(svc_key(proto, key.daddr, key.dport));
    if (it == by_vip_.end()) {
      if (proto == IPPROTO_TCP && laddrs_.count(key.daddr)) {
        // A server's segment for a connection that is gone (expired, reset, a lost RST):
        // this worker owns the local port, so no other one holds it.
        drop(kCtr_drop_no_conn);
        return reset_unknown(frame, now_ms, sink);
      }
      drop(kCtr_drop_no_service);
      return dropped;
    }
    if (proto == IPPROTO_TCP && !(syn && !ack && !rst)) {
      // Only a SYN opens a connection; another worker may hold this one.
      if (cfg_.workers > 1) return Verdict{Action::Miss, kCtr_drop_no_conn};
      drop(kCtr_drop_no_conn);
      return reset_unknown(frame, now_ms, sink);
    }
    c = new_conn(services_[it->second], key.saddr, key.sport, now_ms);
    if (!c) return dropped;
    dir = 0;
  }

  if (proto == IPPROTO_TCP) {
    if (dir == 0 && syn && !ack && !rst) {
      // A SYN with a new ISN on a connection that is not live starts the 4-tuple over; a
      // retransmitted one changes nothing, and inside a live connection a SYN is no reason
      // to forget where both ends stand.
      if (c->state != kTcpEstablished && c->state != kTcpFinWait && c->state != kTcpCloseWait &&
          c->state != kTcpLastAck && be32(reinterpret_cast<rte_tcp_hdr*>(l4)->sent_seq) + 1 != c->trk_next[0])
        track_restart(*c);
    } else if (out_of_window(*c, dir, l4, l4len)) {
      drop(kCtr_drop_out_of_window);  // before it moves the state or a timer
      return dropped;
    }
    if (dir == 1 && syn && ack && !c->answered) {
      c->answered = true;
      signals_.push_back(HealthSignal{c->svc->name, c->dest->key, true, "answered"});
    }
    if (dir == 1 && rst && !c->answered && (c->state == kTcpSynRecv || c->state == kTcpSynSent)) {
      c->answered = true;  // one signal per connection
      server_failed(*c, c->dest->key, "refused", false);
    }
    set_state(*c, tcp_next_state(c->state, dir, syn, fin, ack, rst), now_ms);
  } else {
    if (dir == 1 && c->state == kUdpOneway) {
      c->answered = true;
      signals_.push_back(HealthSignal{c->svc->name, c->dest->key, true, "answered"});
      c->state = kUdpNormal;
    }
    c->expires_ms = now_ms + cfg_.timeouts.udp_ms[c->state];
    schedule(*c);
  }
  if (dir == 0) {
    c->dest->in_pkts++;
    c->dest->in_bytes += total;
  } else {
    c->dest->out_pkts++;
    c->dest->out_bytes += total;
  }
  return forward(*c, dir, frame, sink);
}

Verdict Pipeline::reset_unknown(uint8_t* frame, uint64_t now_ms, FrameSink& sink) {
  const Verdict dropped{Action::Drop, 0};
  uint8_t* ip = frame + kEth;
  const uint32_t ihl = (ip[0] & 0x0f) * 4u, total = be16(load16(ip + 2));
  const uint8_t* th = ip + ihl;
  const uint8_t f = th[13];
  if (!cfg_.tcp_reset_unknown || (f & RTE_TCP_RST_FLAG)) return dropped;  // never a RST for a RST
  if (now_ms / 1000 != rst_second_) rst_second_ = now_ms / 1000, rst_budget_ = cfg_.tcp_reset_unknown;
  if (rst_budget_ == 0) {
    counters_[kCtr_rst_unknown_limited]++;
    return dropped;
  }
  rst_budget_--;
  uint32_t saddr, daddr, seq, ack;
  uint16_t sport, dport;
  std::memcpy(&saddr, ip + 12, 4);
  std::memcpy(&daddr, ip + 16, 4);
  std::memcpy(&sport, th, 2);
  std::memcpy(&dport, th + 2, 2);
  std::memcpy(&seq, th + 4, 4);
  std::memcpy(&ack, th + 8, 4);
  const uint32_t len = total - ihl - tcp::header_len(th) + ((f & RTE_TCP_SYN_FLAG) ? 1 : 0) + ((f & RTE_TCP_FIN_FLAG) ? 1 : 0);
  // A fresh 20-byte IPv4 header and 20-byte TCP header, back toward the sender.
  std::memset(ip, 0, 40);
  ip[0] = 0x45;
  store16(ip + 2, rte_cpu_to_be_16(40));
  store16(ip + 6, rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG));
  ip[8] = 64;
  ip[9] = IPPROTO_TCP;
  std::memcpy(ip + 12, &daddr, 4);
  std::memcpy(ip + 16, &saddr, 4);
  uint8_t* rt = ip + 20;
  std::memcpy(rt, &dport, 2);
  std::memcpy(rt + 2, &sport, 2);
  if (f & RTE_TCP_ACK_FLAG) {
    std::memcpy(rt + 4, &ack, 4);  // <SEQ=SEG.ACK><CTL=RST>
    rt[13] = RTE_TCP_RST_FLAG;
  } else {
    const uint32_t a = rte_cpu_to_be_32(be32(seq) + len);  // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    std::memcpy(rt + 8, &a, 4);
    rt[13] = RTE_TCP_RST_FLAG | RTE_TCP_ACK_FLAG;
  }
  rt[12] = 5 << 4;
  ipv4_header_checksum_set(ip, 20);
  const uint16_t c = l4_checksum(daddr, saddr, IPPROTO_TCP, rt, 20);
  std::memcpy(rt + 16, &c, 2);
  counters_[kCtr_rst_unknown_sent]++;
  Verdict v = output(frame, be32(saddr), sink);
  if (v.action == Action::Transmit) v.len = kEth + 40;
  return v;
}

Verdict Pipeline::forward(Conn& c, int dir, uint8_t* frame, FrameSink& sink) {
  auto* iph = reinterpret_cast<rte_ipv4_hdr*>(frame + kEth);
  uint8_t* l4 = frame + kEth + (iph->version_ihl & 0x0f) * 4u;
  uint8_t proto = iph->next_proto_id;
  uint8_t* check = l4 + (proto == IPPROTO_TCP ? offsetof(rte_tcp_hdr, cksum) : offsetof(rte_udp_hdr, dgram_cksum));
  if (proto == IPPROTO_UDP && load16(check) == 0) check = nullptr;
  uint16_t osp = load16(l4), odp = load16(l4 + 2);
  if (proto == IPPROTO_TCP) track_segment(c, dir, l4, be16(iph->total_length) - (iph->version_ihl & 0x0f) * 4u);  // core/track.h
  uint32_t nsaddr, ndaddr;
  uint16_t nsport, ndport;
  if (dir == 0) {
    nsaddr = c.laddr, nsport = c.lport, ndaddr = c.daddr, ndport = c.dport;
    counters_[kCtr_fullnat_in]++;
  } else {
    nsaddr = c.vaddr, nsport = c.vport, ndaddr = c.caddr, ndport = c.cport;
    counters_[kCtr_fullnat_out]++;
  }
  uint32_t osa = iph->src_addr, oda = iph->dst_addr;
  uint32_t nsa = rte_cpu_to_be_32(nsaddr), nda = rte_cpu_to_be_32(ndaddr);
  uint16_t nsp = rte_cpu_to_be_16(nsport), ndp = rte_cpu_to_be_16(ndport);
  // The address change enters the IPv4 header checksum and the TCP/UDP one (pseudo-header).
  const uint32_t addrs = csum_delta4(osa, nsa) + csum_delta4(oda, nda);
  iph->hdr_checksum = csum_adjust(iph->hdr_checksum, addrs);
  if (check) {
    uint16_t s = csum_adjust(load16(check), addrs + csum_delta2(osp, nsp) + csum_delta2(odp, ndp));
    if (proto == IPPROTO_UDP && s == 0) s = 0xffff;  // 0 means "no checksum" in UDP
    store16(check, s);
  }
  iph->src_addr = nsa;
  iph->dst_addr = nda;
  store16(l4, nsp);
  store16(l4 + 2, ndp);
  if (proto == IPPROTO_TCP && (c.c2s_delta | c.s2c_delta)) {
    if (dir == 0)
      tcp::shift_sequence(l4, c.c2s_delta, c.s2c_delta, check);
    else
      tcp::shift_sequence(l4, c.s2c_delta, c.c2s_delta, check);
  }
  if (proto == IPPROTO_TCP && c.sp_ts) synproxy_timestamps(c, dir, l4, check);  // SYNPROXY
  Verdict v = output(frame, ndaddr, sink);
  if (proto == IPPROTO_TCP && v.action == Action::Transmit) {
    clamp_syn_mss(dir, frame, v);
    insert_client_address(c, dir, frame, v, sink);
  }
  return v;
}

Conn* Pipeline::new_conn(ServiceState& st, uint32_t saddr, uint16_t sport, uint64_t now_ms) {
  const Service& svc = *st.svc;
  if (svc.max_conns && st.conns >= svc.max_conns) {
    drop(kCtr_drop_service_full);
    return nullptr;
  }
  if (conns_.size() >= conns_.capacity()) {
    drop(kCtr_drop_conn_table_full);
    return nullptr;
  }
  uint8_t src[4], dst[4];
  uint32_t sbe = rte_cpu_to_be_32(saddr), dbe = rte_cpu_to_be_32(svc.vip);
  std::memcpy(src, &sbe, 4);
  std::memcpy(dst, &dbe, 4);
  HashTuple t{src, 4, sport, dst, 4, svc.vport};
  int32_t idx = plan_pick(svc.plan, st.cursor, t, [&svc](size_t i) {
    const Dest* d = i < svc.dests.size() ? svc.dests[i].get() : nullptr;
    return d ? d->load() : ServerLoad{0, 0};
  });
  if (idx < 0 || static_cast<size_t>(idx) >= svc.dests.size() || svc.dests[idx]->draining) {
    drop(kCtr_drop_no_server);
    return nullptr;
  }
  uint32_t laddr = 0;
  uint16_t lport = 0;
  for (size_t k = 0; k < svc.laddrs.size() && lport == 0; k++) {
    laddr = svc.laddrs[(st.laddr_cursor + k) % svc.laddrs.size()];
    lport = lports_.acquire(laddr);
  }
  st.laddr_cursor++;
  if (lport == 0) {
    drop(kCtr_drop_local_ports_exhausted);
    return nullptr;
  }
  Conn* c = conns_.allocate();
  c->proto = svc.proto;
  c->state = svc.proto == IPPROTO_TCP ? static_cast<uint8_t>(kTcpNone) : static_cast<uint8_t>(kUdpOneway);
  c->caddr = saddr;
  c->cport = sport;
  c->vaddr = svc.vip;
  c->vport = svc.vport;
  c->laddr = laddr;
  c->lport = lport;
  c->daddr = svc.dests[idx]->addr;
  c->dport = svc.dests[idx]->port;
  c->created_ms = now_ms;
  c->expires_ms = now_ms + (svc.proto == IPPROTO_TCP ? cfg_.timeouts.tcp_ms[kTcpNone] : cfg_.timeouts.udp_ms[0]);
  c->svc = st.svc;
  c->dest = svc.dests[idx];
  c->dest->add_inactive(1);  // IPVS counts a connection inactive until it is ESTABLISHED
  c->dest->conns++;
  conns_.insert(c);
  schedule(*c);
  st.conns++;
  counters_[kCtr_conns_created]++;
  if (cfg_.conn_events) note_conn_event(*c, true, now_ms);
  return c;
}

void Pipeline::set_state(Conn& c, uint8_t state, uint64_t now_ms) {
  if (c.state != state) {
    if (c.state == kTcpEstablished) {
      c.dest->add_active(-1);
      c.dest->add_inactive(1);
    } else if (state == kTcpEstablished) {
      c.dest->add_inactive(-1);
      c.dest->add_active(1);
    }
    c.state = state;
  }
  c.expires_ms = now_ms + cfg_.timeouts.tcp_ms[state];
  schedule(c);
}

void Pipeline::schedule(Conn& c) {
  int64_t tick = static_cast<int64_t>(c.expires_ms / kTickMs);
  if (c.wheel_tick >= 0 && c.wheel_tick <= tick) return;  // filed no later: re-filed when that tick comes
  c.wheel_tick = tick;
  wheel_[static_cast<uint64_t>(tick) % kWheelSlots].push_back({conns_.index_of(&c), c.gen, tick});
}

uint32_t Pipeline::expire_tick(int64_t tick, uint64_t now_ms, FrameSink& sink) {
  std::vector<TimerEntry> entries;
  entries.swap(wheel_[static_cast<uint64_t>(tick) % kWheelSlots]);
  uint32_t n = 0;
  for (const TimerEntry& e : entries) {
    if (e.tick > tick) {  // a later turn of the wheel
      wheel_[static_cast<uint64_t>(tick) % kWheelSlots].push_back(e);
      continue;
    }
    Conn& c = conns_.at(e.conn);
    if (!c.in_use || c.gen != e.gen || c.wheel_tick != e.tick) continue;  // ended, reused or re-filed
    if (c.expires_ms <= now_ms && c.sp_state == 1 && synproxy_expire(c, now_ms, sink)) {
      continue;  // SYNPROXY retransmitted its SYN (or moved to another server) and re-filed it
    } else if (c.expires_ms <= now_ms) {
      end_conn(c, true);
      n++;
    } else if (c.dest->drain_timed) {
      drain_expire(c, now_ms, sink);  // core/drain.cc: reset it, or file it at its next drain time
    } else {
      c.wheel_tick = -1;
      schedule(c);
    }
  }
  return n;
}

void Pipeline::end_conn(Conn& c, bool expired, const char* reason) {
  if (expired && !c.answered) {
    if (c.proto == IPPROTO_TCP && (c.state == kTcpSynRecv || c.state == kTcpSynSent))
      server_failed(c, c.dest->key, "timeout", false);
    else if (c.proto == IPPROTO_UDP && c.state == kUdpOneway)
      server_failed(c, c.dest->key, "oneway-expired", false);
  }
  if (c.proto == IPPROTO_TCP && c.state == kTcpEstablished)
    c.dest->add_active(-1);
  else
    c.dest->add_inactive(-1);
  lports_.release(c.laddr, c.lport);
  auto it = services_.find(c.svc->id);
  if (it != services_.end() && it->second.conns > 0) it->second.conns--;
  if (cfg_.conn_events) note_conn_event(c, false, last_now_, reason);
  conns_.remove(&c);
}

// Visits only the wheel slots whose ticks passed since the last call (all of them at most
// once after a long pause), and the current slot again each call for exact expiry.
uint32_t Pipeline::expire(uint64_t now_ms, FrameSink& sink) {
  last_now_ = now_ms;
  int64_t target = static_cast<int64_t>(now_ms / kTickMs);
  if (last_tick_ < 0) last_tick_ = 0;
  int64_t from = std::max(last_tick_, target - static_cast<int64_t>(kWheelSlots) + 1);
  uint32_t n = 0;
  if (!drain_requests_.empty()) drain_scan(sink);  // core/drain.cc
  for (int64_t t = from; t <= target; t++) n += expire_tick(t, now_ms, sink);
  if (target > last_tick_) last_tick_ = target;
  counters_[kCtr_conns_expired] += n;
  return n;
}

}  // namespace fulcrum
