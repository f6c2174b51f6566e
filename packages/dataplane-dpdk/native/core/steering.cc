#include "core/steering.h"

#include <rte_byteorder.h>
#include <rte_flow.h>

#include <cstring>

namespace fulcrum {

namespace {

// ingress, ETH / IPV4 dst == addr / TCP|UDP dst & (n-1) == worker → QUEUE worker.
int rule(uint16_t port, uint32_t addr, uint8_t proto, uint16_t worker, uint16_t n, bool create,
         rte_flow_error* err) {
  rte_flow_attr attr{};
  attr.ingress = 1;
  rte_flow_item_ipv4 ip_spec{}, ip_mask{};
  ip_spec.hdr.dst_addr = rte_cpu_to_be_32(addr);
  ip_mask.hdr.dst_addr = 0xffffffff;
  rte_flow_item_tcp tcp_spec{}, tcp_mask{};
  rte_flow_item_udp udp_spec{}, udp_mask{};
  tcp_spec.hdr.dst_port = udp_spec.hdr.dst_port = rte_cpu_to_be_16(worker);
  tcp_mask.hdr.dst_port = udp_mask.hdr.dst_port = rte_cpu_to_be_16(static_cast<uint16_t>(n - 1));
  rte_flow_item pattern[4]{};
  pattern[0].type = RTE_FLOW_ITEM_TYPE_ETH;
  pattern[1].type = RTE_FLOW_ITEM_TYPE_IPV4;
  pattern[1].spec = &ip_spec;
  pattern[1].mask = &ip_mask;
  if (proto == 6) {
    pattern[2].type = RTE_FLOW_ITEM_TYPE_TCP;
    pattern[2].spec = &tcp_spec;
    pattern[2].mask = &tcp_mask;
  } else {
    pattern[2].type = RTE_FLOW_ITEM_TYPE_UDP;
    pattern[2].spec = &udp_spec;
    pattern[2].mask = &udp_mask;
  }
  pattern[3].type = RTE_FLOW_ITEM_TYPE_END;
  rte_flow_action_queue queue{};
  queue.index = worker;
  rte_flow_action actions[2]{};
  actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
  actions[0].conf = &queue;
  actions[1].type = RTE_FLOW_ACTION_TYPE_END;
  if (!create) return rte_flow_validate(port, &attr, pattern, actions, err);
  return rte_flow_create(port, &attr, pattern, actions, err) ? 0 : -1;
}

}  // namespace

void Steering::probe(const std::vector<uint16_t>& ports, uint16_t workers) {
  ports_ = ports;
  workers_ = workers;
  enabled_.assign(ports.size(), false);
  reasons_.assign(ports.size(), "");
  for (size_t i = 0; i < ports.size(); i++) {
    if (workers < 2) {
      reasons_[i] = "one worker";
      continue;
    }
    if (workers & (workers - 1)) {
      reasons_[i] = "the worker count is not a power of two";
      continue;
    }
    rte_flow_error err{};
    // 192.0.2.1 (TEST-NET-1): only validated, never installed.
    int rc = rule(ports[i], 0xc0000201, 6, 0, workers, false, &err);
    enabled_[i] = rc == 0;
    if (rc != 0) reasons_[i] = err.message ? err.message : std::strerror(-rc);
  }
}

unsigned Steering::add_local_address(uint32_t addr) {
  if (!steered_.insert(addr).second) return 0;
  unsigned n = 0;
  for (size_t i = 0; i < ports_.size(); i++) {
    if (!enabled_[i]) continue;
    for (uint8_t proto : {uint8_t{6}, uint8_t{17}})
      for (uint16_t w = 0; w < workers_; w++) {
        rte_flow_error err{};
        if (rule(ports_[i], addr, proto, w, workers_, true, &err) == 0) n++;
      }
  }
  return n;
}

}  // namespace fulcrum
