// TOA and PROXY-protocol insertion and MSS clamping (core/insert.h), after DPVS's
// ip_vs_proto_tcp.c (tcp_in_add_toa, tcp_in_prune_options, tcp_out_adjust_mss) and
// ip_vs_proxy_proto.c, with the differences the README names.
#include "core/insert.h"

#include <netinet/in.h>

#include <cstdio>
#include <cstring>

#include "core/checksum.h"
#include "core/packet.h"
#include "core/pipeline.h"
#include "core/tcp.h"

namespace fulcrum {
namespace insert {
namespace {

uint32_t get32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

struct Crc32cTable {
  uint32_t t[256];
  Crc32cTable() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1)));
      t[i] = c;
    }
  }
};
const Crc32cTable kCrc;

}  // namespace

uint32_t crc32c(const uint8_t* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) c = kCrc.t[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return ~c;
}

uint32_t proxy_header(const InsertSettings& s, uint32_t caddr, uint16_t cport, uint32_t vaddr, uint16_t vport,
                      const char* unique_id, uint32_t unique_len, uint8_t* out) {
  if (s.pp_version == 1) {
    int n = std::snprintf(reinterpret_cast<char*>(out), kProxyMax, "PROXY TCP4 %u.%u.%u.%u %u.%u.%u.%u %u %u\r\n",
                          caddr >> 24, (caddr >> 16) & 255, (caddr >> 8) & 255, caddr & 255, vaddr >> 24,
                          (vaddr >> 16) & 255, (vaddr >> 8) & 255, vaddr & 255, unsigned{cport}, unsigned{vport});
    return n > 0 && static_cast<uint32_t>(n) < kProxyMax ? static_cast<uint32_t>(n) : 0;
  }
  static const uint8_t kSig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
  size_t total = 16 + 12 + (s.pp_crc32c ? 7 : 0) + s.pp_tlvs_before.size() +
                 (s.pp_unique_id ? 3 + unique_len : 0) + s.pp_tlvs_after.size();
  if (total > kProxyMax) return 0;
  std::memcpy(out, kSig, 12);
  out[12] = 0x21;  // version 2, PROXY
  out[13] = 0x11;  // AF_INET, STREAM
  put16(out + 14, static_cast<uint16_t>(total - 16));
  put32(out + 16, caddr);
  put32(out + 20, vaddr);
  put16(out + 24, cport);
  put16(out + 26, vport);
  uint8_t* p = out + 28;
  uint8_t* crc = nullptr;
  // @fulcrum/proxy-protocol's order: CRC32C first, then the named TLVs in type order, then custom.
  if (s.pp_crc32c) {
    p[0] = 0x03;
    put16(p + 1, 4);
    crc = p + 3;
    std::memset(crc, 0, 4);
    p += 7;
  }
  if (!s.pp_tlvs_before.empty()) std::memcpy(p, s.pp_tlvs_before.data(), s.pp_tlvs_before.size());
  p += s.pp_tlvs_before.size();
  if (s.pp_unique_id) {
    p[0] = 0x05;
    put16(p + 1, static_cast<uint16_t>(unique_len));
    std::memcpy(p + 3, unique_id, unique_len);
    p += 3 + unique_len;
  }
  if (!s.pp_tlvs_after.empty()) std::memcpy(p, s.pp_tlvs_after.data(), s.pp_tlvs_after.size());
  if (crc) put32(crc, crc32c(out, total));
  return static_cast<uint32_t>(total);
}

int toa_options(const uint8_t* th, uint32_t caddr, uint16_t cport, bool prune, uint8_t* out) {
  uint8_t area[tcp::kHeaderMax];
  uint32_t n = 0;
  area[n++] = tcp::kOptToa;
  area[n++] = kToaLen;
  put16(area + n, cport);
  put32(area + n + 2, caddr);
  n += 6;
  bool overflow = false;
  bool ok = tcp::for_each_option(th, [&](uint8_t kind, uint32_t at, uint32_t len) {
    if (kind == tcp::kOptToa) return;
    if (prune && (kind == tcp::kOptNop || kind == tcp::kOptSack)) return;
    if (n + len > sizeof(area)) {
      overflow = true;
      return;
    }
    std::memcpy(area + n, th + at, len);
    n += len;
  });
  if (!ok || overflow) return -1;
  while (n & 3) area[n++] = tcp::kOptEnd;
  if (n > tcp::kHeaderMax - tcp::kHeaderMin) return -1;
  std::memcpy(out, area, n);
  return static_cast<int>(n);
}

}  // namespace insert

using namespace pkt;

namespace {

constexpr uint8_t kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10, kFin = 0x01;

bool seq_before(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }

// After a change of length or header: IP total length and both checksums from scratch.
void finish_ipv4_tcp(uint8_t* ip, uint32_t ihl, uint32_t total) {
  insert::put16(ip + 2, static_cast<uint16_t>(total));
  ipv4_header_checksum_set(ip, ihl);
  uint8_t* th = ip + ihl;
  std::memset(th + 16, 0, 2);
  uint32_t saddr, daddr;
  std::memcpy(&saddr, ip + 12, 4);
  std::memcpy(&daddr, ip + 16, 4);
  store16(th + 16, l4_checksum(saddr, daddr, IPPROTO_TCP, th, static_cast<uint16_t>(total - ihl)));
}

}  // namespace

uint16_t Pipeline::port_mtu(uint16_t id) const {
  const Port* p = port(id);
  return p ? p->mtu : 1500;
}

void Pipeline::set_port_mtu(uint16_t id, uint16_t mtu) {
  for (auto& p : ports_)
    if (p.id == id) p.mtu = mtu;
}

void Pipeline::clamp_syn_mss(int dir, uint8_t* frame, const Verdict& v) {
  if (cfg_.mss_clamp == 0) return;
  uint8_t* ip = frame + kEth;
  uint8_t* th = ip + (ip[0] & 0x0f) * 4u;
  uint8_t fl = tcp::flags(th);
  if (!(fl & kSyn) || (fl & kRst) || static_cast<bool>(fl & kAck) != (dir == 1)) return;
  int32_t mtu = port_mtu(v.port);
  int32_t mss = cfg_.mss_clamp > 0 ? cfg_.mss_clamp : mtu - 40;
  if (mss < 88) return;  // an MTU too small to mean anything: leave the SYN alone
  if (tcp::clamp_mss(th, static_cast<uint16_t>(mss), th + 16)) counters_[kCtr_mss_clamped]++;
}

// The server's SYN-ACK (its ISN, in the server's own sequence space, where the server-bound
// ACKs' `ack` is compared): from a forwarded SYN-ACK, or from SYNPROXY, which consumes it and
// sends the kept client ACKs first.
void Pipeline::insert_server_synack(Conn& c, uint32_t server_isn) {
  c.ins_server_next = server_isn + 1;
  c.ins_flags |= kInsSynAck;
}

void Pipeline::insert_client_address(Conn& c, int dir, uint8_t* frame, Verdict& v, FrameSink& sink) {
  const InsertSettings& s = c.svc->insert;
  if (s.kind == InsertSettings::kNone) return;
  uint8_t* ip = frame + kEth;
  uint32_t ihl = (ip[0] & 0x0f) * 4u;
  uint32_t total = (uint32_t{ip[2]} << 8) | ip[3];
  uint8_t* th = ip + ihl;
  uint32_t thl = tcp::header_len(th);
  uint8_t fl = tcp::flags(th);
  uint32_t seq = insert::get32(th + 4), ack = insert::get32(th + 8);

  if (dir == 1) {
    if ((fl & kSyn) && (fl & kAck)) {
      insert_server_synack(c, seq - c.s2c_delta);  // `seq` was moved to the client's space
      // DPVS tcp_out_adjust_mss: the client's full-sized segments leave room for the option.
      if (s.kind == InsertSettings::kToa) {
        tcp::Options o = tcp::parse_options(th);
        if (o.mss > insert::kToaLen) tcp::clamp_mss(th, static_cast<uint16_t>(o.mss - insert::kToaLen), th + 16);
      }
    }
    if (s.kind == InsertSettings::kProxy && c.c2s_delta && (fl & kAck)) {
      // shift_sequence took the header's length off: `ack` is in the client's space.
      if (!seq_before(ack + c.c2s_delta, c.ins_stream_start + c.c2s_delta)) {
        c.ins_flags |= kInsHeaderAcked;
      } else if (seq_before(ack, c.ins_stream_start)) {
        // The server has acknowledged part of the header only: none of the client's bytes.
        uint32_t from, to;
        insert::put32(reinterpret_cast<uint8_t*>(&to), c.ins_stream_start);
        std::memcpy(&from, th + 8, 4);
        store16(th + 16, csum_replace4(load16(th + 16), from, to));
        std::memcpy(th + 8, &to, 4);
      }
    }
    return;
  }

  if (fl & kSyn) {
    if (!(fl & kAck)) {
      c.ins_stream_start = seq + 1;
      c.ins_flags |= kInsSyn;
    }
    return;
  }
  if ((fl & kRst) || !(fl & kAck)) return;
  uint32_t payload = total - ihl - thl;
  uint32_t mtu = port_mtu(v.port);

  if (s.kind == InsertSettings::kToa) {
    // DPVS: every segment toward the server until the client acknowledges the server's first
    // byte: the handshake-completing ACK (where the server's TOA module reads it) and the
    // first data.
    if (!(c.ins_flags & kInsSynAck) || ack != c.ins_server_next) return;
    uint8_t area[40];
    auto fits = [&](int n) {
      uint32_t grown = total - (thl - tcp::kHeaderMin) + static_cast<uint32_t>(n);
      return grown <= mtu && kEth + grown <= room_;
    };
    int n = insert::toa_options(th, c.caddr, c.cport, false, area);
    bool pruned = false;
    if ((n < 0 || !fits(n)) && s.toa_prune) {
      int m = insert::toa_options(th, c.caddr, c.cport, true, area);
      if (m >= 0) n = m, pruned = true;
    }
    if (n < 0) {
      counters_[kCtr_toa_skipped_no_room]++;
      return;
    }
    if (!fits(n)) {
      counters_[kCtr_toa_skipped_mtu]++;
      return;
    }
    uint32_t nthl = tcp::kHeaderMin + static_cast<uint32_t>(n);
    std::memmove(th + nthl, th + thl, payload);
    std::memcpy(th + tcp::kHeaderMin, area, n);
    th[12] = static_cast<uint8_t>(((nthl / 4) << 4) | (th[12] & 0x0f));
    uint32_t ntotal = ihl + nthl + payload;
    finish_ipv4_tcp(ip, ihl, ntotal);
    v.len = kEth + ntotal;
    counters_[kCtr_toa_inserted]++;
    if (pruned) counters_[kCtr_toa_pruned]++;
    return;
  }

  // PROXY protocol, until the server acknowledges the header, on segments that start the
  // client's stream: the handshake-completing ACK carries it (so server-speaks-first
  // protocols work); the first data segment follows it, moved up by its length; a client
  // segment there again (a re-ACK of a retransmitted SYN-ACK: the header was lost; a
  // retransmission of the first data) carries it again.
  if (!(c.ins_flags & kInsSyn) || (c.ins_flags & kInsHeaderAcked)) return;
  if (seq - c.c2s_delta != c.ins_stream_start) return;
  if (c.c2s_delta && payload > 0 && !(c.ins_flags & kInsDataSeen)) {
    c.ins_flags |= kInsDataSeen;
    return;
  }
  if (payload > 0) c.ins_flags |= kInsDataSeen;
  uint8_t hdr[insert::kProxyMax];
  char uid[insert::kUniqueIdMax];
  int ulen = std::snprintf(uid, sizeof(uid), "fulcrum-%08x%04x-%llu", c.laddr, unsigned{c.lport},
                           static_cast<unsigned long long>(c.created_ms));
  uint32_t hl = insert::proxy_header(s, c.caddr, c.cport, c.vaddr, c.vport, uid,
                                     ulen > 0 ? static_cast<uint32_t>(ulen) : 0, hdr);
  if (hl == 0 || (c.c2s_delta && c.c2s_delta != hl)) {
    counters_[kCtr_proxy_protocol_skipped]++;
    return;
  }
  bool again = c.c2s_delta != 0;
  if (total + hl <= mtu && kEth + total + hl <= room_) {
    uint8_t* data = th + thl;
    std::memmove(data + hl, data, payload);
    std::memcpy(data, hdr, hl);
    insert::put32(th + 4, c.ins_stream_start);
    finish_ipv4_tcp(ip, ihl, total + hl);
    v.len = kEth + total + hl;
    c.c2s_delta = hl;
    counters_[again ? kCtr_proxy_protocol_resent : kCtr_proxy_protocol_inserted]++;
    return;
  }
  // No room in this segment (a full-sized first segment): the header goes in a segment of
  // its own, emitted now so it leaves before this one, which moves up by its length.
  uint32_t stotal = ihl + thl + hl;
  if (stotal > mtu || kEth + stotal > sizeof(standalone_)) {
    counters_[kCtr_proxy_protocol_skipped]++;
    return;
  }
  std::memcpy(standalone_, frame, kEth + ihl + thl);
  uint8_t* sip = standalone_ + kEth;
  uint8_t* sth = sip + ihl;
  std::memcpy(sth + thl, hdr, hl);
  sth[13] = static_cast<uint8_t>((fl & ~(kFin | kSyn | kRst)) | kPsh);
  insert::put32(sth + 4, c.ins_stream_start);
  finish_ipv4_tcp(sip, ihl, stotal);
  sink.emit(v.port, standalone_, kEth + stotal);
  insert::put32(th + 4, c.ins_stream_start + hl);
  finish_ipv4_tcp(ip, ihl, total);
  c.c2s_delta = hl;
  counters_[again ? kCtr_proxy_protocol_resent : kCtr_proxy_protocol_inserted]++;
  counters_[kCtr_proxy_protocol_standalone]++;
}

}  // namespace fulcrum
