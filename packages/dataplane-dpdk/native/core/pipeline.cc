#include "core/pipeline.h"

#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "core/checksum.h"
#include "core/packet.h"

namespace fulcrum {

using namespace pkt;

const char* const kCounterNames[kCounterCount] = {
#define FULCRUM_COUNTER_NAME(n) #n,
    FULCRUM_COUNTERS(FULCRUM_COUNTER_NAME)
#undef FULCRUM_COUNTER_NAME
};

// DPVS's defaults (dp_vs_proto_tcp.c tcp_timeouts, seconds): short for half-open states.
Timeouts default_timeouts() {
  Timeouts t{};
  const uint64_t s = 1000;
  t.tcp_ms[kTcpNone] = 2 * s;
  t.tcp_ms[kTcpEstablished] = 90 * s;
  t.tcp_ms[kTcpSynSent] = 3 * s;
  t.tcp_ms[kTcpSynRecv] = 30 * s;
  t.tcp_ms[kTcpFinWait] = 7 * s;
  t.tcp_ms[kTcpTimeWait] = 7 * s;
  t.tcp_ms[kTcpClose] = 3 * s;
  t.tcp_ms[kTcpCloseWait] = 7 * s;
  t.tcp_ms[kTcpLastAck] = 7 * s;
  t.tcp_ms[kTcpListen] = 120 * s;
  t.tcp_ms[kTcpSynAck] = 30 * s;
  t.udp_ms[kUdpOneway] = 20 * s;
  t.udp_ms[kUdpNormal] = 300 * s;
  return t;
}

Pipeline::Pipeline(const PipelineConfig& cfg)
    : cookies_(cfg.synproxy.secret_rotate_ms),
      cfg_(cfg),
      conns_(cfg.conn_capacity),
      lports_(cfg.local_port_min, cfg.local_port_max, cfg.worker, cfg.workers) {}

void Pipeline::add_port(uint16_t id, const Mac& mac, const std::vector<InterfaceAddress>& addrs) {
  ports_.push_back(Port{id, mac, addrs});
  for (const auto& a : addrs) routes_.add(Route{a.addr, a.prefix, 0, id});
}

const Pipeline::Port* Pipeline::port(uint16_t id) const {
  for (const auto& p : ports_)
    if (p.id == id) return &p;
  return nullptr;
}

bool Pipeline::connected(uint16_t id, uint32_t ip) const {
  const Port* p = port(id);
  if (!p) return false;
  for (const auto& a : p->addrs)
    if ((ip & RouteTable::mask(a.prefix)) == (a.addr & RouteTable::mask(a.prefix))) return true;
  return false;
}

// Ours: an address of any port, a VIP or a local address.
bool Pipeline::owns(uint16_t, uint32_t ip) const {
  if (owned_.count(ip)) return true;
  for (const auto& p : ports_)
    for (const auto& a : p.addrs)
      if (a.addr == ip) return true;
  return false;
}

uint32_t Pipeline::port_address(uint16_t id, uint32_t toward) const {
  const Port* p = port(id);
  if (!p || p->addrs.empty()) return 0;
  for (const auto& a : p->addrs)
    if ((toward & RouteTable::mask(a.prefix)) == (a.addr & RouteTable::mask(a.prefix))) return a.addr;
  return p->addrs.front().addr;
}

void Pipeline::rebuild_owned() {
  owned_.clear();
  laddrs_.clear();
  for (const auto& [id, st] : services_) {
    owned_.insert(st.svc->vip);
    for (uint32_t a : st.svc->laddrs) owned_.insert(a), laddrs_.insert(a);
  }
}

// Gratuitous ARP (a request for the address itself) on the ports that answer for it, so
// neighbours and switches learn a VIP or local address as soon as it is served.
void Pipeline::announce(uint32_t ip) {
  if (!cfg_.announce) return;
  bool held = false;
  for (const auto& p : ports_) held = held || connected(p.id, ip);
  for (const auto& p : ports_) {
    if (held && !connected(p.id, ip)) continue;
    std::vector<uint8_t> f(60);
    arp_request(f.data(), p.mac, ip, ip);
    pending_.emplace_back(p.id, std::move(f));
    counters_[kCtr_garp_sent]++;
  }
}

void Pipeline::flush(FrameSink& sink) {
  for (auto& [port, frame] : pending_) sink.emit(port, frame.data(), static_cast<uint32_t>(frame.size()));
  pending_.clear();
}

void Pipeline::set_service(std::shared_ptr<const Service> svc) {
  std::unordered_set<uint32_t> before = owned_;
  auto it = services_.find(svc->id);
  expire_note_births(it != services_.end() ? it->second.svc.get() : nullptr, *svc);  // core/drain.cc
  if (it != services_.end()) {
    const Service& old = *it->second.svc;
    by_vip_.erase(svc_key(old.proto, old.vip, old.vport));
    it->second.svc = svc;
    it->second.cursor = 0;  // a new plan starts from its beginning, as IPVS on update
  } else {
    ServiceState st;
    st.svc = svc;
    services_.emplace(svc->id, std::move(st));
  }
  by_vip_[svc_key(svc->proto, svc->vip, svc->vport)] = svc->id;
  drain_forget_serving(*svc);  // core/drain.cc
  rebuild_owned();
  std::vector<uint32_t> fresh{svc->vip};  // in the service's order, so announcements are too
  fresh.insert(fresh.end(), svc->laddrs.begin(), svc->laddrs.end());
  for (uint32_t ip : fresh)
    if (before.insert(ip).second) announce(ip);
}

std::vector<ServiceStats> Pipeline::service_stats() const {
  std::vector<ServiceStats> out;
  for (const auto& [id, st] : services_) {
    ServiceStats s{st.svc->name, st.conns, {}};
    for (const auto& d : st.svc->dests) s.dests.push_back(*d);
    out.push_back(std::move(s));
  }
  return out;
}

bool Pipeline::remove_service(uint32_t id) {
  auto it = services_.find(id);
  if (it == services_.end()) return false;
  const Service& s = *it->second.svc;
  by_vip_.erase(svc_key(s.proto, s.vip, s.vport));
  services_.erase(it);
  rebuild_owned();
  return true;
}

void Pipeline::note_conn_event(const Conn& c, bool opened, uint64_t now_ms, const char* reason) {
  if (conn_events_.size() >= cfg_.conn_events_max) {
    counters_[kCtr_conn_events_dropped]++;
    return;
  }
  conn_events_.push_back(ConnEvent{opened, c.caddr, c.cport, opened ? 0 : now_ms - std::min(now_ms, c.created_ms),
                                   c.svc->name, c.dest->key, reason});
}

Verdict Pipeline::process(uint16_t in_port, uint8_t* frame, uint32_t len, uint32_t cap, uint64_t now_ms,
                          FrameSink& sink, uint64_t hint) {
  room_ = cap < len ? len : cap;
  last_now_ = now_ms;
  counters_[kCtr_rx_packets]++;
  counters_[kCtr_rx_bytes] += len;
  Verdict v{Action::Drop, 0};
  if (len < kEth) {
    drop(kCtr_drop_truncated);
    return v;
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  uint16_t type = be16(eth->ether_type);
  if (type == RTE_ETHER_TYPE_ARP) {
    v = handle_arp(in_port, frame, len);
  } else if (type != RTE_ETHER_TYPE_IPV4) {
    drop(kCtr_drop_unknown_ethertype);
  } else {
    uint8_t* ip = frame + kEth;
    uint32_t avail = len - kEth;
    auto* iph = reinterpret_cast<rte_ipv4_hdr*>(ip);
    uint32_t ihl = 0, total = 0;
    if (avail < sizeof(rte_ipv4_hdr)) {
      drop(kCtr_drop_truncated);
      return v;
    }
    ihl = (iph->version_ihl & 0x0f) * 4u;
    total = be16(iph->total_length);
    if ((iph->version_ihl >> 4) != 4 || ihl < 20) {
      drop(kCtr_drop_bad_ip_header);
    } else if (ihl > avail || total > avail) {
      drop(kCtr_drop_truncated);
    } else if (total < ihl) {
      drop(kCtr_drop_bad_ip_header);
    } else if (!ipv4_header_checksum_ok(ip, ihl)) {
      drop(kCtr_drop_bad_ip_checksum);
    } else if (be16(iph->fragment_offset) & (RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) {
      // Fragments are not reassembled yet: dropped and counted.
      drop(kCtr_drop_fragment);
    } else if (iph->next_proto_id == IPPROTO_TCP || iph->next_proto_id == IPPROTO_UDP) {
      // Connections first: those of a removed service or local address still finish.
      v = handle_l4(in_port, frame, ip, ihl, total, now_ms, sink, hint);
    } else if (!owns(in_port, be32(iph->dst_addr))) {
      drop(kCtr_drop_not_ours);
    } else if (iph->next_proto_id == IPPROTO_ICMP) {
      v = handle_icmp(in_port, frame, ip, ihl, total, sink);
    } else {
      drop(kCtr_drop_unknown_protocol);
    }
  }
  if (v.action == Action::Transmit) {
    counters_[kCtr_tx_packets]++;
    counters_[kCtr_tx_bytes] += v.len ? v.len : len;
  }
  return v;
}

Verdict Pipeline::handle_arp(uint16_t in_port, uint8_t* frame, uint32_t len) {
  Verdict v{Action::Drop, 0};
  if (len < kEth + sizeof(rte_arp_hdr)) {
    drop(kCtr_drop_truncated);
    return v;
  }
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(frame + kEth);
  const Port* p = port(in_port);
  if (!p || be16(arp->arp_hardware) != RTE_ARP_HRD_ETHER || be16(arp->arp_protocol) != RTE_ETHER_TYPE_IPV4 ||
      arp->arp_hlen != 6 || arp->arp_plen != 4) {
    drop(kCtr_drop_arp_other);
    return v;
  }
  uint32_t sip = be32(arp->arp_data.arp_sip);
  uint32_t tip = be32(arp->arp_data.arp_tip);
  uint16_t op = be16(arp->arp_opcode);
  if (sip != 0 && connected(in_port, sip)) {
    Mac sha = to_mac(arp->arp_data.arp_sha.addr_bytes);
    const Mac* known = neigh_.find(in_port, sip);
    if (cfg_.workers > 1 && (!known || *known != sha)) learned_.push_back(LearnedNeighbor{in_port, sip, sha});
    neigh_.set(in_port, sip, sha, false);
    counters_[kCtr_arp_learned]++;
  }
  // Answer for a VIP or local address on the port whose network holds it (any port when none does).
  bool ours = false;
  if (op == RTE_ARP_OP_REQUEST && owns(in_port, tip)) {
    bool held_elsewhere = false;
    for (const auto& q : ports_)
      if (q.id != in_port && connected(q.id, tip)) held_elsewhere = true;
    ours = connected(in_port, tip) || !held_elsewhere;
  }
  if (!ours) {
    if (op != RTE_ARP_OP_REPLY) drop(kCtr_drop_arp_other);
    return v;
  }
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
  arp->arp_data.arp_tha = arp->arp_data.arp_sha;
  arp->arp_data.arp_tip = arp->arp_data.arp_sip;
  from_mac(arp->arp_data.arp_sha.addr_bytes, p->mac);
  arp->arp_data.arp_sip = rte_cpu_to_be_32(tip);
  eth->dst_addr = eth->src_addr;
  from_mac(eth->src_addr.addr_bytes, p->mac);
  counters_[kCtr_arp_replies]++;
  return Verdict{Action::Transmit, in_port};
}

Verdict Pipeline::handle_icmp(uint16_t, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint32_t total,
                              FrameSink& sink) {
  auto* iph = reinterpret_cast<rte_ipv4_hdr*>(ip);
  uint8_t* icmp = ip + ihl;
  uint32_t ilen = total - ihl;
  if (ilen < sizeof(rte_icmp_hdr)) {
    drop(kCtr_drop_truncated);
    return Verdict{Action::Drop, 0};
  }
  if (csum_fold(csum_partial(icmp, ilen, 0)) != 0xffff) {
    drop(kCtr_drop_bad_l4_checksum);
    return Verdict{Action::Drop, 0};
  }
  auto* ih = reinterpret_cast<rte_icmp_hdr*>(icmp);
  if (ih->icmp_type != RTE_IP_ICMP_ECHO_REQUEST || ih->icmp_code != 0) {
    drop(kCtr_drop_icmp_other);
    return Verdict{Action::Drop, 0};
  }
  ih->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
  ih->icmp_cksum = 0;
  ih->icmp_cksum = static_cast<uint16_t>(~csum_fold(csum_partial(icmp, ilen, 0)));
  uint32_t src = iph->src_addr;
  iph->src_addr = iph->dst_addr;
  iph->dst_addr = src;
  iph->time_to_live = 64;
  ipv4_header_checksum_set(ip, ihl);
  counters_[kCtr_icmp_echo_replies]++;
  return output(frame, be32(iph->dst_addr), sink);
}


Verdict Pipeline::output(uint8_t* frame, uint32_t dst, FrameSink& sink) {
  const Route* r = routes_.lookup(dst);
  const Port* p = r ? port(r->port) : nullptr;
  if (!p) {
    drop(kCtr_drop_no_route);
    return Verdict{Action::Drop, 0};
  }
  uint32_t nh = r->via ? r->via : dst;
  const Mac* mac = neigh_.find(r->port, nh);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(frame);
  if (!mac) {
    // Resolve and drop this packet (the sender retransmits); DPVS queues it instead. Requests
    // are rate limited (per worker: each has its own table) so that a flood toward unresolved
    // neighbours (spoofed on-link sources of SYNPROXY cookies) is not echoed as ARP broadcasts.
    if (neigh_.may_request(r->port, nh, last_now_)) {
      uint8_t req[60];
      arp_request(req, p->mac, port_address(r->port, nh), nh);
      sink.emit(r->port, req, sizeof(req));
      counters_[kCtr_arp_requests_sent]++;
    } else {
      counters_[kCtr_arp_requests_suppressed]++;
    }
    drop(kCtr_drop_neigh_miss);
    return Verdict{Action::Drop, 0};
  }
  from_mac(eth->src_addr.addr_bytes, p->mac);
  from_mac(eth->dst_addr.addr_bytes, *mac);
  return Verdict{Action::Transmit, r->port};
}

}  // namespace fulcrum
