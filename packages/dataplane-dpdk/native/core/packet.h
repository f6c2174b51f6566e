// Header access shared by the pipeline's files: byte pointers into packed DPDK headers,
// never a reference to a packed member. Internal to native/core.
#pragma once
#include <rte_arp.h>
#include <rte_byteorder.h>
#include <rte_ether.h>

#include <cstdint>
#include <cstring>

#include "core/neigh.h"

namespace fulcrum {
namespace pkt {

constexpr uint32_t kEth = sizeof(rte_ether_hdr);
inline uint32_t be32(uint32_t v) { return rte_be_to_cpu_32(v); }
inline uint16_t be16(uint16_t v) { return rte_be_to_cpu_16(v); }
inline Mac to_mac(const uint8_t* a) {
  Mac m;
  std::memcpy(m.data(), a, 6);
  return m;
}
inline void from_mac(uint8_t* a, const Mac& m) { std::memcpy(a, m.data(), 6); }
inline uint16_t load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void store16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// A broadcast ARP request, padded to the Ethernet minimum (60 bytes without FCS).
inline void arp_request(uint8_t* req, const Mac& mac, uint32_t sip, uint32_t tip) {
  std::memset(req, 0, 60);
  auto* eth = reinterpret_cast<rte_ether_hdr*>(req);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(req + kEth);
  std::memset(eth->dst_addr.addr_bytes, 0xff, 6);
  from_mac(eth->src_addr.addr_bytes, mac);
  eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_ARP);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = 6;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  from_mac(arp->arp_data.arp_sha.addr_bytes, mac);
  arp->arp_data.arp_sip = rte_cpu_to_be_32(sip);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(tip);
}

}  // namespace pkt
}  // namespace fulcrum
