#include "core/eal.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>

namespace fulcrum {

namespace {
constexpr uint16_t kBurst = 32;
constexpr uint16_t kAhead = 4;  // connections fetched this many frames ahead of their packet

// Redirect-ring items are mbuf pointers; the low bit is set on a missed segment going round
// the workers (Worker::pass_miss), whose hash.usr then holds the worker that received it first.
void* tag_miss(rte_mbuf* m) { return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(m) | 1u); }
bool is_miss(void* item) { return (reinterpret_cast<uintptr_t>(item) & 1u) != 0; }
rte_mbuf* untag(void* item) { return reinterpret_cast<rte_mbuf*>(reinterpret_cast<uintptr_t>(item) & ~uintptr_t{1}); }
constexpr uint16_t kRing = 1024;

// The loops' clock, in milliseconds: the TSC (DPDK's time base, invariant and the same on
// every core), read once per loop iteration. clock_gettime through the vDSO cost ~5 % of a
// busy loop's time in this VM. Every time a pipeline sees comes from here, so the epoch
// does not matter; before the TSC rate is known (or if the EAL reports none), the steady clock.
std::atomic<uint64_t> tsc_per_ms{0};
uint64_t now_ms() {
  uint64_t per = tsc_per_ms.load(std::memory_order_relaxed);
  if (per) return rte_rdtsc() / per;
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Frames a worker originates (ARP requests, gratuitous ARP), sent on its own TX queue.
// A worker's transmit queues, one per port: the frames the pipeline forwards in place and
// those it emits (ARP, RSTs, SYNPROXY's replays) in the order it made them, sent in bursts
// once per loop iteration (an emitted frame used to cost a TX call of its own: on af_packet
// a system call per RST of an expire).
class MbufSink : public FrameSink {
 public:
  MbufSink(rte_mempool* pool, const std::vector<uint16_t>& ids, uint16_t queue)
      : pool_(pool), ids_(ids), queue_(queue), tx_(ids.size()) {
    for (auto& q : tx_) q.reserve(kBurst * 2);
  }
  void emit(uint16_t port, const uint8_t* data, uint32_t len) override {
    if (port >= tx_.size()) return;
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return;
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(len));
    if (!p) {
      rte_pktmbuf_free(m);
      return;
    }
    std::memcpy(p, data, len);
    tx_[port].push_back(m);
  }
  void queue(uint16_t port, rte_mbuf* m) { tx_[port].push_back(m); }
  // Sends what is queued, in bursts of at most kBurst while the port takes them; returns
  // how many a full TX queue refused (freed here).
  uint64_t flush() {
    uint64_t refused = 0;
    for (size_t p = 0; p < tx_.size(); p++) {
      auto& q = tx_[p];
      size_t off = 0;
      while (off < q.size()) {
        const uint16_t n = static_cast<uint16_t>(std::min<size_t>(q.size() - off, kBurst));
        const uint16_t sent = rte_eth_tx_burst(ids_[p], queue_, q.data() + off, n);
        off += sent;
        if (sent < n) break;
      }
      for (size_t i = off; i < q.size(); i++) rte_pktmbuf_free(q[i]);
      refused += q.size() - off;
      q.clear();
    }
    return refused;
  }

 private:
  rte_mempool* pool_;
  const std::vector<uint16_t>& ids_;
  uint16_t queue_;
  std::vector<std::vector<rte_mbuf*>> tx_;
};
}  // namespace

// What the workers share, read-only once they run: the pool and the port ids.
struct EalRunner::Io {
  rte_mempool* pool = nullptr;
  std::vector<uint16_t> ports;         // DPDK port id of pipeline port i
  uint16_t index[RTE_MAX_ETHPORTS]{};  // pipeline port of a DPDK port id
};

struct LoopArg {
  EalRunner* runner;
  uint16_t worker;
};

EalRunner::EalRunner() = default;
EalRunner::~EalRunner() = default;

int EalRunner::start(std::vector<std::string> args, std::vector<EalPort> ports, const PipelineConfig& cfg,
                     const EalOptions& opts, EalHooks hooks) {
  if (started_.exchange(true)) return kEalAlreadyStarted;
  hooks_ = std::move(hooks);
  opts_ = opts;
  running_ = true;
  thread_ = std::thread(&EalRunner::run, this, std::move(args), std::move(ports), cfg);
  return kEalOk;
}

void EalRunner::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

std::vector<std::vector<uint64_t>> EalRunner::worker_counters() {
  std::vector<std::vector<uint64_t>> per;
  if (!workers_ || !running_) return per;
  for (size_t i = 0; i < workers_->size(); i++) {
    std::vector<uint64_t> c;
    std::vector<ServiceStats> s;
    workers_->at(i).published(c, s);
    per.push_back(std::move(c));
  }
  return per;
}

std::vector<uint64_t> EalRunner::counters() { return WorkerSet::sum_counters(worker_counters()); }

std::vector<PortStats> EalRunner::port_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return published_ports_;
}

std::vector<ServiceStats> EalRunner::service_stats() {
  std::vector<std::vector<ServiceStats>> per;
  if (!workers_ || !running_) return {};
  for (size_t i = 0; i < workers_->size(); i++) {
    std::vector<uint64_t> c;
    std::vector<ServiceStats> s;
    workers_->at(i).published(c, s);
    per.push_back(std::move(s));
  }
  return WorkerSet::merge_services(per);
}

unsigned EalRunner::steer(const std::vector<uint32_t>& laddrs) {
  unsigned n = 0;
  if (!running_ || stopping_) return n;
  for (uint32_t a : laddrs) n += steering_.add_local_address(a);
  return n;
}

bool EalRunner::request_connections() {
  if (!workers_ || !running_ || stopping_) return false;
  for (size_t i = 0; i < workers_->size(); i++) workers_->at(i).request_listing();
  return true;
}

bool EalRunner::connections_ready() {
  if (!workers_ || !running_ || stopping_) return true;
  for (size_t i = 0; i < workers_->size(); i++)
    if (!workers_->at(i).listing_finished()) return false;
  return true;
}

std::vector<ConnInfo> EalRunner::take_connections(bool* complete) {
  *complete = true;
  std::vector<ConnInfo> all;
  if (!workers_ || !running_ || stopping_) return all;
  for (size_t i = 0; i < workers_->size(); i++) {
    bool done = false;
    std::vector<ConnInfo> l = workers_->at(i).wait_listing(0, &done);
    *complete = *complete && done;
    all.insert(all.end(), std::make_move_iterator(l.begin()), std::make_move_iterator(l.end()));
  }
  return all;
}

void EalRunner::run(std::vector<std::string> args, std::vector<EalPort> config_ports, PipelineConfig cfg) {
  EalStartResult res;
  res.code = kEalOk;
  std::vector<char*> argv;
  std::string prog = "fulcrum";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    res.code = kEalInitFailed;
    res.message = std::string("rte_eal_init: ") + rte_strerror(rte_errno);
    running_ = false;
    hooks_.started(res);
    return;
  }
  if (rte_get_tsc_hz() >= 1000) tsc_per_ms.store(rte_get_tsc_hz() / 1000, std::memory_order_relaxed);
  io_ = std::make_unique<Io>();
  std::vector<uint16_t>& ports = io_->ports;
  auto fail = [&](int code, std::string msg) {
    res = EalStartResult{};
    res.code = code;
    res.message = std::move(msg);
    for (uint16_t p : ports) {
      rte_eth_dev_stop(p);
      rte_eth_dev_close(p);
    }
    rte_eal_cleanup();
    running_ = false;
    hooks_.started(res);
  };
  if (config_ports.empty()) return fail(kEalNoPorts, "no port configured");
  // A vdev that fails to probe does not fail rte_eal_init: find each port by name, so a
  // missing one is an error instead of shifting every later port by one.
  for (const auto& cp : config_ports) {
    uint16_t pid;
    if (rte_eth_dev_get_port_by_name(cp.device.c_str(), &pid) != 0)
      return fail(kEalNoPorts, "port " + cp.device + " did not open (see the EAL log above)");
    io_->index[pid] = static_cast<uint16_t>(ports.size());
    ports.push_back(pid);
  }
  // One worker per lcore, as far as every port has a queue pair for each: a port with fewer
  // (af_xdp on veth has one) leaves the extra lcores idle rather than refusing the config.
  // Ring sizes: what the config asks, else the driver's preferred size (as testpmd takes it:
  // af_xdp prefers 2,048, which a bulk TCP transfer's bursts need) but at least kRing; then
  // fitted to the driver's limits.
  const uint16_t lcores = static_cast<uint16_t>(rte_lcore_count());
  uint16_t nworkers = lcores;
  unsigned ring_mbufs = 0;
  for (size_t i = 0; i < ports.size(); i++) {
    rte_eth_dev_info info{};
    uint16_t rx = config_ports[i].rx_descriptors, tx = config_ports[i].tx_descriptors;
    if (rte_eth_dev_info_get(ports[i], &info) == 0) {
      uint16_t q = std::min(info.max_rx_queues, info.max_tx_queues);
      if (q >= 1 && q < nworkers) {
        nworkers = q;
        res.idle_reason = "port " + config_ports[i].device + " has " + std::to_string(q) +
                          " queue pair(s): give it more (qpairs=N for net_af_packet, queue_count=N for net_af_xdp "
                          "where the device has them) or list fewer lcores in -l";
      }
      if (!rx) rx = std::max(kRing, info.default_rxportconf.ring_size);
      if (!tx) tx = std::max(kRing, info.default_txportconf.ring_size);
    }
    if (!rx) rx = kRing;
    if (!tx) tx = kRing;
    const int rc = rte_eth_dev_adjust_nb_rx_tx_desc(ports[i], &rx, &tx);
    if (rc != 0) return fail(kEalPortSetupFailed, "port " + config_ports[i].device + ": " + rte_strerror(-rc));
    res.rx_descriptors.push_back(rx);
    res.tx_descriptors.push_back(tx);
    ring_mbufs += rx + tx;
  }
  res.idle_lcores = static_cast<uint16_t>(lcores - nworkers);
  uint32_t local_ports = static_cast<uint32_t>(cfg.local_port_max) - cfg.local_port_min + 1;
  if (nworkers > local_ports)
    return fail(kEalTooFewQueues, "more worker lcores than local ports: each worker needs its own");
  // Sized to fit --no-huge -m 512 (DPDK-NOTES: the default 155k-mbuf pool does not), with
  // room for every RX and TX ring of every worker.
  unsigned mbufs = std::max(8191u, ring_mbufs * nworkers + 4095u);
  io_->pool = rte_pktmbuf_pool_create("fulcrum_mbufs", mbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                      static_cast<int>(rte_socket_id()));
  if (!io_->pool)
    return fail(kEalMempoolFailed, "mbuf pool of " + std::to_string(mbufs) + " mbufs (the ports' rings and " +
                                       std::to_string(nworkers) + " worker(s)): " + rte_strerror(rte_errno));
  workers_ = std::make_unique<WorkerSet>(cfg, nworkers, opts_.redirect_ring, 4096);
  workers_->post_wait_ms = 1000;
  for (uint16_t i = 0; i < ports.size(); i++) {
    uint16_t pid = ports[i];
    rte_eth_dev_info info{};
    int rc = rte_eth_dev_info_get(pid, &info);
    rte_eth_conf conf{};
    // RSS where the device has it (NICs); af_packet and af_xdp spread flows in the kernel.
    uint64_t rss = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (nworkers > 1 && rss) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = rss;
    }
    if (rc == 0) rc = rte_eth_dev_configure(pid, nworkers, nworkers, &conf);
    for (uint16_t q = 0; rc == 0 && q < nworkers; q++) {
      rc = rte_eth_rx_queue_setup(pid, q, res.rx_descriptors[i], rte_eth_dev_socket_id(pid), nullptr, io_->pool);
      if (rc == 0)
        rc = rte_eth_tx_queue_setup(pid, q, res.tx_descriptors[i], rte_eth_dev_socket_id(pid), nullptr);
    }
    if (rc == 0) rc = rte_eth_dev_start(pid);
    if (rc != 0) return fail(kEalPortSetupFailed, "port " + config_ports[i].device + ": " + rte_strerror(-rc));
    rte_eth_promiscuous_enable(pid);
    rte_ether_addr addr;
    rte_eth_macaddr_get(pid, &addr);
    Mac mac;
    std::memcpy(mac.data(), addr.addr_bytes, 6);
    res.macs.push_back(mac);
    for (size_t w = 0; w < workers_->size(); w++) {
      Pipeline& pipeline = workers_->at(w).pipeline();
      pipeline.add_port(i, mac, config_ports[i].addrs);
      uint16_t mtu = 0;
      if (rte_eth_dev_get_mtu(pid, &mtu) == 0 && mtu >= 576) pipeline.set_port_mtu(i, mtu);
    }
  }
  steering_.probe(ports, nworkers);
  res.workers = nworkers;
  res.steering = steering_.enabled();
  res.no_steering = steering_.reasons();
  // Worker lcores first, then the main lcore runs worker 0 until stop().
  std::vector<LoopArg> args_by_worker(nworkers);
  uint16_t next = 1;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    if (next >= nworkers) break;  // idle lcores (see idle_lcores)
    args_by_worker[next] = LoopArg{this, next};
    rte_eal_remote_launch(&EalRunner::loop_entry, &args_by_worker[next], lcore);
    next++;
  }
  hooks_.started(res);
  loop(0);
  rte_eal_mp_wait_lcore();
  // Frames still waiting in redirect rings go back to the pool before it goes.
  for (size_t w = 0; w < workers_->size(); w++) {
    void* items[kBurst];
    unsigned n;
    while ((n = workers_->at(w).take_redirected(items, kBurst)) > 0)
      for (unsigned k = 0; k < n; k++) rte_pktmbuf_free(untag(items[k]));
  }
  for (uint16_t p : ports) {
    rte_eth_dev_stop(p);
    rte_eth_dev_close(p);
  }
  rte_eal_cleanup();
}

int EalRunner::loop_entry(void* arg) {
  auto* a = static_cast<LoopArg*>(arg);
  a->runner->loop(a->worker);
  return 0;
}

void EalRunner::loop(uint16_t index) {
  Worker& w = workers_->at(index);
  Pipeline& pipeline = w.pipeline();
  const std::vector<uint16_t>& ports = io_->ports;
  MbufSink sink(io_->pool, ports, index);
  rte_mbuf* rx[kBurst];
  uint64_t hints[kBurst];
  void* redirected[kBurst];
  uint64_t last_sweep = now_ms();
  unsigned empty_polls = 0;
  RedirectBatch batch(workers_->size());
  auto handle = [&](rte_mbuf* m, uint16_t p, uint64_t now, uint16_t origin, uint64_t hint) {
    uint16_t len = rte_pktmbuf_data_len(m);
    Verdict v =
        pipeline.process(p, rte_pktmbuf_mtod(m, uint8_t*), len, len + rte_pktmbuf_tailroom(m), now, sink, hint);
    if (v.action == Action::Miss) {
      const uint16_t reason = v.port;
      int next = w.pass_miss(origin, reason, now, len);
      if (next >= 0) {
        m->hash.usr = origin;
        batch.add(static_cast<uint16_t>(next), tag_miss(m));
        return;
      }
      v = Verdict{Action::Drop, 0};
      if (next == Worker::kMissUnknown && reason == kCtr_drop_no_conn)
        v = pipeline.reset_unknown(rte_pktmbuf_mtod(m, uint8_t*), now, sink);  // no worker holds it
    }
    if (v.action == Action::Transmit && v.port < ports.size()) {
      // The pipeline wrote a grown frame into the tailroom or shortened it: fix the lengths.
      if (v.len > len)
        rte_pktmbuf_append(m, static_cast<uint16_t>(v.len - len));
      else if (v.len && v.len < len)
        rte_pktmbuf_trim(m, static_cast<uint16_t>(len - v.len));
      sink.queue(v.port, m);
    } else {
      rte_pktmbuf_free(m);
    }
  };
  while (!stopping_.load(std::memory_order_relaxed)) {
    if (w.run_commands()) pipeline.flush(sink);
    uint64_t now = now_ms();
    // What other workers received for this one's connections, then this worker's queues.
    unsigned got = w.take_redirected(redirected, kBurst);
    for (unsigned i = 0; i < got; i++) {
      rte_mbuf* m = untag(redirected[i]);
      hints[i] = pipeline.prefetch(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
    }
    for (unsigned i = 0; i < got && i < kAhead; i++) pipeline.prefetch_conn(hints[i]);
    for (unsigned i = 0; i < got; i++) {
      if (i + kAhead < got) pipeline.prefetch_conn(hints[i + kAhead]);
      rte_mbuf* m = untag(redirected[i]);
      handle(m, io_->index[m->port], now, is_miss(redirected[i]) ? static_cast<uint16_t>(m->hash.usr) : index,
             hints[i]);
    }
    for (uint16_t p = 0; p < ports.size(); p++) {
      uint16_t n = rte_eth_rx_burst(ports[p], index, rx, kBurst);
      got += n;
      // Two passes (Pipeline::prefetch): the frames' headers, then every flow's index slot,
      // then each connection a few frames ahead of its packet.
      for (uint16_t i = 0; i < n; i++) rte_prefetch0(rte_pktmbuf_mtod(rx[i], void*));
      for (uint16_t i = 0; i < n; i++)
        hints[i] = pipeline.prefetch(rte_pktmbuf_mtod(rx[i], uint8_t*), rte_pktmbuf_data_len(rx[i]));
      for (uint16_t i = 0; i < n && i < kAhead; i++) pipeline.prefetch_conn(hints[i]);
      for (uint16_t i = 0; i < n; i++) {
        if (i + kAhead < n) pipeline.prefetch_conn(hints[i + kAhead]);
        rte_mbuf* m = rx[i];
        uint16_t owner = w.owner(rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m));
        if (owner != index) {
          batch.add(owner, m);
          continue;
        }
        handle(m, p, now, index, hints[i]);
      }
    }
    batch.flush(w, *workers_, [](void* m) { rte_pktmbuf_free(untag(m)); });
    if (got) workers_->share_learned(w);
    w.list_step(now);
    pipeline.expire_walk(sink);  // a chunk of an expire's table walk, if one is under way
    const bool sweep = now - last_sweep >= 100;
    if (sweep) pipeline.expire(now, sink);
    if (uint64_t refused = sink.flush()) pipeline.count(kCtr_drop_tx_full, refused);
    if (sweep) {
      last_sweep = now;
      auto signals = pipeline.take_signals();
      if (!signals.empty()) hooks_.signals(std::move(signals));
      auto events = pipeline.take_conn_events();
      if (!events.empty()) hooks_.conn_events(std::move(events));
      // Copied here, swapped under the worker's own lock: readers never wait on the loop.
      std::vector<uint64_t> counters(pipeline.counters(), pipeline.counters() + kCounterCount);
      counters.push_back(pipeline.conns().size());
      w.publish(std::move(counters), pipeline.service_stats());
      if (index == 0) {
        std::vector<PortStats> port_stats;
        for (uint16_t pid : ports) {
          rte_eth_stats st{};
          rte_eth_stats_get(pid, &st);
          port_stats.push_back({st.ipackets, st.opackets, st.ibytes, st.obytes, st.imissed, st.ierrors,
                                st.oerrors, st.rx_nombuf});
        }
        std::lock_guard<std::mutex> lock(mu_);
        published_ports_.swap(port_stats);
      }
    }
    if (got == 0 && opts_.idle_sleep_us > 0) {
      if (++empty_polls >= opts_.idle_polls) rte_delay_us_sleep(opts_.idle_sleep_us);
    } else {
      empty_polls = 0;
    }
  }
}

}  // namespace fulcrum
