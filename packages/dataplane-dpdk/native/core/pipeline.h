// One worker's packet pipeline: L2 (ARP), L3 (IPv4 checks, ICMP echo, routing), FULLNAT
// for TCP and UDP. Frames are processed in place; the caller owns the buffer (an rte_mbuf's
// data on a port, or a plain buffer in the injection harness). Knows nothing of Node.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/conn.h"
#include "core/drain.h"
#include "core/laddr.h"
#include "core/neigh.h"
#include "core/route.h"
#include "core/service.h"
#include "core/synproxy.h"

namespace fulcrum {

// Every counter, in the order the binding reports them. Drops name their reason.
#define FULCRUM_COUNTERS(X)                                                       \
  X(rx_packets) X(rx_bytes) X(tx_packets) X(tx_bytes)                             \
  X(arp_replies) X(arp_requests_sent) X(arp_learned) X(garp_sent)                \
  X(icmp_echo_replies)                                                            \
  X(conns_created) X(conns_expired) X(conns_retired)                              \
  X(fullnat_in) X(fullnat_out)                                                    \
  X(drop_truncated) X(drop_unknown_ethertype) X(drop_bad_ip_header)               \
  X(drop_bad_ip_checksum) X(drop_bad_l4_checksum) X(drop_fragment)                \
  X(drop_unknown_protocol) X(drop_not_ours) X(drop_no_service) X(drop_no_conn)    \
  X(drop_no_server) X(drop_conn_table_full) X(drop_local_ports_exhausted)         \
  X(drop_service_full) X(drop_no_route) X(drop_neigh_miss) X(drop_icmp_other)     \
  X(drop_arp_other) X(drop_tx_full)                                               \
  /* TOA (passthrough toa, core/insert.cc) */                                     \
  X(toa_inserted) X(toa_pruned) X(toa_skipped_no_room) X(toa_skipped_mtu)         \
  /* PROXY-protocol insertion (passthrough proxy-protocol, core/insert.cc) */     \
  X(proxy_protocol_inserted) X(proxy_protocol_resent) X(proxy_protocol_standalone) \
  X(proxy_protocol_skipped)                                                       \
  /* MSS clamping (options.tcp.mssClamp, core/insert.cc) */                       \
  X(mss_clamped)                                                                  \
    X(redirected) X(drop_redirect_ring_full) X(conn_events_dropped)  \
  /* SYNPROXY */                                                                  \
  X(synproxy_syn_answered) X(synproxy_ack_valid) X(synproxy_bad_cookie)           \
  X(synproxy_ack_saved) X(synproxy_ack_saved_overflow) X(synproxy_ack_storm)      \
  X(synproxy_out_of_window) X(synproxy_syn_dropped) X(synproxy_conn_reused)       \
  X(synproxy_rs_syn_retransmits) X(synproxy_rs_refused) X(synproxy_rs_timeout)    \
  X(synproxy_rs_retried) X(synproxy_client_reset) X(synproxy_ack_deferred)       \
  /* ARP request rate limit (core/neigh.cc) */                                    \
  X(arp_requests_suppressed)                                                      \
  /* Client segments passed between workers to find their connection (worker.cc) */ \
  X(miss_passed) X(miss_pass_limited)                                             \
  /* Servers taken out: drain and expire (core/drain.cc) */                       \
  X(conns_drain_idle) X(conns_drain_deadline) X(conns_reset) X(rst_sent)           \
  /* TCP segments outside the window (options.tcp.windowCheck, core/track.h) */      \
  X(drop_out_of_window)                                                          \
  /* RSTs for segments of connections nobody holds (options.tcp.resetUnknown) */     \
  X(rst_unknown_sent) X(rst_unknown_limited)                                                           \
  /* A segment that ended its connection of an expired server (core/drain.cc) */  \
  X(drop_conn_retired)

enum CounterId {
#define FULCRUM_COUNTER_ENUM(n) kCtr_##n,
  FULCRUM_COUNTERS(FULCRUM_COUNTER_ENUM)
#undef FULCRUM_COUNTER_ENUM
      kCounterCount
};
extern const char* const kCounterNames[kCounterCount];

struct Timeouts {
  uint64_t tcp_ms[kTcpStateCount];
  uint64_t udp_ms[kUdpStateCount];
};
Timeouts default_timeouts();

struct PipelineConfig {
  uint32_t conn_capacity = 65536;
  uint16_t local_port_min = 1024;
  uint16_t local_port_max = 65535;
  Timeouts timeouts = default_timeouts();
  // MSS clamping on SYN and SYN-ACK: 0 off, > 0 that MSS, -1 the output port's MTU - 40.
  int32_t mss_clamp = 0;
  // Drops TCP segments outside the window both ends have told each other (core/track.h).
  bool tcp_window_check = true;
  // Answers a TCP segment (not a RST) for a VIP service or a local address that no
  // connection holds with a RST, as a host with no socket for it does: at most this many per
  // second per worker (0: never), so a flood of strays draws a bounded answer.
  uint32_t tcp_reset_unknown = 1000;
  // This pipeline is worker `worker` of `workers` (its slice of every local-port pool).
  uint16_t worker = 0;
  uint16_t workers = 1;
  // Sends gratuitous ARP for new addresses (one worker does, so neighbours get one each).
  bool announce = true;
  // Records connection:opened / connection:closed events, at most `conn_events_max`
  // between two take_conn_events() (the rest are counted in conn_events_dropped).
  bool conn_events = false;
  uint32_t conn_events_max = 8192;
  SynproxyConfig synproxy;
  // expire's table walk (core/drain.cc expire_walk), per loop iteration: a budget in units
  // of an empty slot's look; a connection looked at costs expire_conn_cost more (its server
  // compared), one reset expire_reset_cost more (its RSTs built, routed and sent, its slot
  // and local port freed). bench/dpdk/expire.mjs on a million slots: ~6 ns a slot, about as
  // much again a connection, ~240 ns a reset; a chunk ~0.4 ms.
  uint32_t expire_chunk_slots = 65536;
  uint32_t expire_conn_cost = 1;
  uint32_t expire_reset_cost = 40;
};

// A connection opened or closed, for the kernel's connection:* events; or (failed) one the
// server refused or never answered before it was established: connection:failed.
struct ConnEvent {
  bool opened;
  uint32_t caddr;
  uint16_t cport;
  uint64_t duration_ms;
  std::string service;
  std::string server;
  // Why a connection closed when the balancer ended it ("drain-idle", "drain-deadline",
  // "expire"), or why it failed ("refused", "timeout", "oneway-expired"); nullptr otherwise.
  const char* reason = nullptr;
  bool failed = false;
  bool retried = false;  // failed: the handshake moved to another server (SYNPROXY)
};

// A neighbour learned from ARP by one worker, for the others (each keeps its own table).
struct LearnedNeighbor {
  uint16_t port;
  uint32_t ip;
  Mac mac;
};

struct InterfaceAddress {
  uint32_t addr;  // host order
  uint8_t prefix;
};

// A passive-health signal (DPVS dest-check's inputs), drained by the control plane.
struct HealthSignal {
  std::string service;
  std::string server;
  bool ok;
  const char* reason;
};

// A service's live counts as the workers see them (for ipvsadm -ln --stats style listings).
struct ServiceStats {
  std::string name;
  uint32_t live_conns;
  std::vector<Dest> dests;  // copies: key and counters
};

// Where extra frames go (ARP requests the pipeline originates).
class FrameSink {
 public:
  virtual ~FrameSink() = default;
  virtual void emit(uint16_t port, const uint8_t* data, uint32_t len) = 0;
};

// Miss: a TCP segment that only a connection could take, and this worker has none for it;
// with several workers another may (Worker::pass_miss). `port` then names the counter to
// count when no worker does.
enum class Action : uint8_t { Drop, Transmit, Miss };
struct Verdict {
  Action action;
  uint16_t port;
  uint32_t len = 0;  // the frame's new length when the pipeline changed it; 0: as received
};

class Pipeline {
 public:
  explicit Pipeline(const PipelineConfig& cfg);

  // Control (between bursts, on the worker's own thread).
  void add_port(uint16_t id, const Mac& mac, const std::vector<InterfaceAddress>& addrs);
  // The largest IP packet a port sends (1500 unless set): TOA and PROXY insertion stay below it.
  void set_port_mtu(uint16_t id, uint16_t mtu);
  void add_route(const Route& r) { routes_.add(r); }
  void add_neighbor(uint16_t port, uint32_t ip, const Mac& mac) { neigh_.set(port, ip, mac, true); }
  // A neighbour another worker learned (not permanent, as if this worker had seen the ARP).
  void learn_neighbor(uint16_t port, uint32_t ip, const Mac& mac) { neigh_.set(port, ip, mac, false); }
  // Neighbours learned or changed since the last call (only when workers > 1).
  std::vector<LearnedNeighbor> take_learned() { return std::move(learned_); }
  std::vector<ConnEvent> take_conn_events() { return std::move(conn_events_); }
  const PipelineConfig& config() const { return cfg_; }
  // Adds or replaces a service by id; connections keep the snapshot they started with.
  void set_service(std::shared_ptr<const Service> svc);
  bool remove_service(uint32_t id);
  // Connections to `server` of service `id` end (`retired` with action expire): TCP ones
  // with a RST to each side. The command only files the request: expire_walk() resets them
  // a chunk at a time, and a segment of one not reached yet ends it as it arrives.
  void expire_server(uint32_t id, const std::string& server);
  // One chunk of the expire walk (core/drain.cc), every loop iteration: up to
  // expire_chunk_slots empty slots' worth (PipelineConfig); the RSTs go to `sink`. Returns
  // true while an expire is still walking.
  bool expire_walk(FrameSink& sink);
  bool expire_walking() const { return !expire_requests_.empty(); }
  // `retired` with action drain (core/drain.cc): no new connections (Dest::draining, from
  // the snapshot), a connection idle for `idle_ms` is reset, the rest `deadline_ms` from now.
  void drain_server(uint32_t id, const std::string& server, uint64_t idle_ms, uint64_t deadline_ms);

  // `cap` is the buffer's size from `frame`: what a change that grows the frame (a TCP
  // option or a header inserted) may use. The verdict's `len` says when the length changed.
  // `hint` is what prefetch() returned for this frame (0: none).
  Verdict process(uint16_t in_port, uint8_t* frame, uint32_t len, uint32_t cap, uint64_t now_ms, FrameSink& sink,
                  uint64_t hint = 0);
  // A received burst in two passes (DPDK's classic pattern), so that the connection lookups
  // of a burst wait for memory together instead of one after another: first prefetch() on
  // every frame (hashes its flow, fetches the index slot; returns the hint process() takes,
  // 0 when the frame is not IPv4 TCP/UDP), then, a few frames ahead of process(),
  // prefetch_conn(hint) (fetches the connection the slot names). Both only read.
  uint64_t prefetch(const uint8_t* frame, uint32_t len) const;
  void prefetch_conn(uint64_t hint) const {
    if (hint) conns_.prefetch_conn(static_cast<uint32_t>(hint));
  }
  // Sends what control changes queued (gratuitous ARP for new VIPs and local addresses).
  void flush(FrameSink& sink);
  // Ends connections whose timeout passed; returns how many. `sink` takes what expiry sends
  // (SYNPROXY's SYN retransmissions toward a silent server).
  uint32_t expire(uint64_t now_ms, FrameSink& sink);

  std::vector<HealthSignal> take_signals() { return std::move(signals_); }
  std::vector<ServiceStats> service_stats() const;
  const uint64_t* counters() const { return counters_; }
  // For the I/O loop around the pipeline (packets a full TX queue refused).
  void count(CounterId id, uint64_t n) { counters_[id] += n; }
  // A frame handed to another worker after process() counted it: it counts where it ends.
  void uncount_rx(uint32_t len) {
    counters_[kCtr_rx_packets]--;
    counters_[kCtr_rx_bytes] -= len;
  }
  ConnTable& conns() { return conns_; }
  const LocalPortPool& local_ports() const { return lports_; }
  // The frame (a TCP segment that process() found no connection for, and no other worker
  // either) turned into the RST a host with no socket for it sends (RFC 9293 3.10.7.1):
  // Transmit, or Drop when it is a RST itself, resets are off, or this second's are spent.
  Verdict reset_unknown(uint8_t* frame, uint64_t now_ms, FrameSink& sink);

 private:
  struct Port {
    uint16_t id;
    Mac mac;
    std::vector<InterfaceAddress> addrs;
    uint16_t mtu = 1500;
  };
  static uint64_t svc_key(uint8_t proto, uint32_t vip, uint16_t vport) {
    return (static_cast<uint64_t>(proto) << 48) | (static_cast<uint64_t>(vport) << 32) | vip;
  }
  const Port* port(uint16_t id) const;
  bool owns(uint16_t port, uint32_t ip) const;
  // The window check (options.tcp.windowCheck, core/track.h): a TCP segment other than a SYN,
  // on a connection whose two window states are set, outside what its two ends told each other.
  bool out_of_window(const Conn& c, int dir, const uint8_t* l4, uint32_t l4len) const {
    return cfg_.tcp_window_check && !(l4[13] & 0x02) && (c.trk_seen & kTrkWinBoth) == kTrkWinBoth &&
           !track_in_window(c, dir, l4, l4len);
  }
  bool connected(uint16_t port, uint32_t ip) const;
  uint32_t port_address(uint16_t port, uint32_t toward) const;
  void rebuild_owned();
  void announce(uint32_t ip);

  Verdict handle_arp(uint16_t in_port, uint8_t* frame, uint32_t len);
  Verdict handle_icmp(uint16_t in_port, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint32_t ip_len,
                      FrameSink& sink);
  Verdict handle_l4(uint16_t in_port, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint32_t ip_len,
                    uint64_t now_ms, FrameSink& sink, uint64_t hint);
  Conn* new_conn(ServiceState& st, uint32_t saddr, uint16_t sport, uint64_t now_ms);
  void set_state(Conn& c, uint8_t state, uint64_t now_ms);
  void schedule(Conn& c);
  uint32_t expire_tick(int64_t tick, uint64_t now_ms, FrameSink& sink);
  // The FULLNAT rewrite of one segment of `c` from side `dir`, then routing: every packet
  // of a connection leaves through here (SYNPROXY's generated and replayed ones included).
  Verdict forward(Conn& c, int dir, uint8_t* frame, FrameSink& sink);
  void end_conn(Conn& c, bool expired, const char* reason = nullptr);
  void note_conn_event(const Conn& c, bool opened, uint64_t now_ms, const char* reason = nullptr);

  // Servers taken out (core/drain.cc). A server failed a connection before it was
  // established: the passive-health signal and connection:failed (`server` is the one that
  // failed: a retry may already have moved `c` on).
  void server_failed(const Conn& c, const std::string& server, const char* reason, bool retried);
  // Ends `c` now: a RST to each side that can still hold it (TCP), then frees it.
  void reset_conn(Conn& c, const char* reason, FrameSink& sink);
  uint32_t send_resets(const Conn& c, FrameSink& sink);
  void send_reset(const Conn& c, int toward, uint32_t seq, bool has_ack, uint32_t ack, FrameSink& sink);
  // When a draining connection's timer comes: true when it was ended (idle, or the deadline).
  bool drain_expire(Conn& c, uint64_t now_ms, FrameSink& sink);
  uint64_t drain_due(const Conn& c) const;
  void drain_scan(FrameSink& sink);
  // A snapshot that serves a server again cancels the drain requests still scanning for it.
  void drain_forget_serving(const Service& svc);
  // Files `c` at the tick of `at_ms` when that is earlier than where it is filed (never in
  // a tick already passed: the current one is visited again on every expire()).
  void file_at(Conn& c, uint64_t at_ms);
  // Expire (core/drain.cc). expire_on_packet: a segment of `c` (from side `dir`, its
  // TCP/UDP header at `l4`, `l4len` bytes with its data) while an expire walks: when `c` is
  // one of the expired server's, it ends now, as the walk would have ended it, and the
  // segment goes no further (true).
  bool expire_on_packet(Conn& c, int dir, const uint8_t* l4, uint32_t l4len, FrameSink& sink);
  bool expire_matches(const Conn& c) const;
  // A snapshot's Dests that were not in the one it replaces (`old`, null for a new
  // service): spared by the expires of their server still walking.
  void expire_note_births(const Service* old, const Service& next);
  std::vector<ExpireRequest> expire_requests_;
  uint32_t expire_cursor_ = 0;
  std::vector<DrainRequest> drain_requests_;
  uint32_t drain_cursor_ = 0;
  static constexpr uint32_t kDrainScanChunk = 65536;  // table slots a sweep looks at
  Verdict output(uint8_t* frame, uint32_t dst, FrameSink& sink);
  uint16_t port_mtu(uint16_t id) const;
  // TOA / PROXY-protocol insertion on a translated TCP segment about to leave on v.port
  // (core/insert.cc): may grow the frame in place (v.len) or emit the header on its own.
  void insert_server_synack(Conn& c, uint32_t server_isn);
  void insert_client_address(Conn& c, int dir, uint8_t* frame, Verdict& v, FrameSink& sink);
  // MSS clamping of a SYN (dir 0) or SYN-ACK (dir 1) about to leave on v.port (core/insert.cc).
  void clamp_syn_mss(int dir, uint8_t* frame, const Verdict& v);
  void drop(CounterId id) { counters_[id]++; }

  // SYNPROXY (core/synproxy.cc). synproxy_input runs for every TCP segment before FULLNAT:
  // true = it decided the packet's fate (`v`); false = FULLNAT goes on with `c` and `dir`
  // (set when a valid cookie ACK opened a connection: the frame is now the server's SYN).
  bool synproxy_input(uint16_t in_port, uint8_t* frame, uint8_t* ip, uint32_t ihl, Conn*& c, int& dir,
                      uint64_t now_ms, FrameSink& sink, Verdict& v);
  // On a connection's expiry: true when SYNPROXY keeps it (a SYN retransmitted, another server tried).
  bool synproxy_expire(Conn& c, uint64_t now_ms, FrameSink& sink);
  Verdict synproxy_cookie(uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms, FrameSink& sink);
  Conn* synproxy_open(ServiceState& st, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms, bool& miss);
  bool synproxy_opening(Conn& c, int dir, uint8_t* frame, uint8_t* ip, uint32_t ihl, uint64_t now_ms,
                        FrameSink& sink, Verdict& v);
  bool synproxy_retry(Conn& c, uint64_t now_ms, FrameSink& sink);
  void synproxy_send(Conn& c, int dir, const std::vector<uint8_t>& frame, FrameSink& sink);
  void synproxy_timestamps(Conn& c, int dir, uint8_t* th, uint8_t* check);
  SynCookies cookies_;

  PipelineConfig cfg_;
  uint32_t room_ = 0;  // the current frame's buffer size (process's `cap`)
  std::vector<Port> ports_;
  RouteTable routes_;
  NeighTable neigh_;
  ConnTable conns_;
  LocalPortPool lports_;
  std::unordered_map<uint32_t, ServiceState> services_;  // by id
  std::unordered_map<uint64_t, uint32_t> by_vip_;         // (proto, vip, vport) → id
  std::unordered_set<uint32_t> owned_;                    // VIPs and local addresses
  std::unordered_set<uint32_t> laddrs_;                   // local addresses
  uint64_t rst_second_ = ~uint64_t{0};  // the second rst_budget_ belongs to (reset_unknown)
  uint32_t rst_budget_ = 0;
  std::vector<HealthSignal> signals_;
  std::vector<LearnedNeighbor> learned_;
  std::vector<ConnEvent> conn_events_;
  uint64_t last_now_ = 0;  // the latest clock seen (process, expire): when a connection ends
  // Timer wheel (IPVS re-arms a timer per connection; this re-files lazily): a connection
  // is filed at the tick of its expiry; a packet that pushes expiry later moves nothing,
  // the connection is re-filed when its old tick comes; an earlier expiry re-files at once.
  static constexpr uint64_t kTickMs = 64;
  static constexpr uint32_t kWheelSlots = 1024;
  struct TimerEntry {
    uint32_t conn;
    uint32_t gen;
    int64_t tick;
  };
  std::vector<std::vector<TimerEntry>> wheel_{kWheelSlots};
  int64_t last_tick_ = -1;
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> pending_;
  uint64_t counters_[kCounterCount] = {};
  uint8_t standalone_[2048];  // a PROXY header in a segment of its own (insert_client_address)
};

}  // namespace fulcrum
