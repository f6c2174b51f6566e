#include "core/eal.h"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <chrono>
#include <cstring>

namespace fulcrum {

namespace {
constexpr uint16_t kBurst = 32;
constexpr uint16_t kRing = 1024;

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

class MbufSink : public FrameSink {
 public:
  MbufSink(rte_mempool* pool, const std::vector<uint16_t>& ids) : pool_(pool), ids_(ids) {}
  void emit(uint16_t port, const uint8_t* data, uint32_t len) override {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (!m) return;
    char* p = rte_pktmbuf_append(m, static_cast<uint16_t>(len));
    if (!p) {
      rte_pktmbuf_free(m);
      return;
    }
    std::memcpy(p, data, len);
    if (port >= ids_.size() || rte_eth_tx_burst(ids_[port], 0, &m, 1) != 1) rte_pktmbuf_free(m);
  }

 private:
  rte_mempool* pool_;
  const std::vector<uint16_t>& ids_;
};
}  // namespace

int EalRunner::start(std::vector<std::string> args, std::vector<EalPort> ports, const PipelineConfig& cfg,
                     EalHooks hooks) {
  if (started_.exchange(true)) return kEalAlreadyStarted;
  hooks_ = std::move(hooks);
  running_ = true;
  thread_ = std::thread(&EalRunner::run, this, std::move(args), std::move(ports), cfg);
  return kEalOk;
}

void EalRunner::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  running_ = false;
}

void EalRunner::post(std::function<void(Pipeline&)> cmd) {
  std::lock_guard<std::mutex> lock(mu_);
  commands_.push_back(std::move(cmd));
  has_commands_ = true;
}

std::vector<uint64_t> EalRunner::counters() {
  std::lock_guard<std::mutex> lock(mu_);
  return published_;
}

std::vector<PortStats> EalRunner::port_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return published_ports_;
}

std::vector<ServiceStats> EalRunner::service_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  return published_services_;
}

void EalRunner::run(std::vector<std::string> args, std::vector<EalPort> config_ports, PipelineConfig cfg) {
  EalStartResult res{kEalOk, "", {}};
  std::vector<char*> argv;
  std::string prog = "fulcrum";
  argv.push_back(prog.data());
  for (auto& a : args) argv.push_back(a.data());
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    res = {kEalInitFailed, std::string("rte_eal_init: ") + rte_strerror(rte_errno), {}};
    running_ = false;
    hooks_.started(res);
    return;
  }
  rte_mempool* pool = nullptr;
  std::vector<uint16_t> ports;  // DPDK port id of pipeline port i
  auto fail = [&](int code, std::string msg) {
    res = {code, std::move(msg), {}};
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
    ports.push_back(pid);
  }
  // Sized to fit --no-huge -m 512 (DPDK-NOTES: the default 155k-mbuf pool does not).
  pool = rte_pktmbuf_pool_create("fulcrum_mbufs", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 static_cast<int>(rte_socket_id()));
  if (!pool) return fail(kEalMempoolFailed, std::string("mbuf pool: ") + rte_strerror(rte_errno));
  Pipeline pipeline(cfg);
  for (uint16_t i = 0; i < ports.size(); i++) {
    uint16_t pid = ports[i];
    rte_eth_conf conf{};
    int rc = rte_eth_dev_configure(pid, 1, 1, &conf);
    if (rc == 0) rc = rte_eth_rx_queue_setup(pid, 0, kRing, rte_eth_dev_socket_id(pid), nullptr, pool);
    if (rc == 0) rc = rte_eth_tx_queue_setup(pid, 0, kRing, rte_eth_dev_socket_id(pid), nullptr);
    if (rc == 0) rc = rte_eth_dev_start(pid);
    if (rc != 0) return fail(kEalPortSetupFailed, "port " + config_ports[i].device + ": " + rte_strerror(-rc));
    rte_eth_promiscuous_enable(pid);
    rte_ether_addr addr;
    rte_eth_macaddr_get(pid, &addr);
    Mac mac;
    std::memcpy(mac.data(), addr.addr_bytes, 6);
    res.macs.push_back(mac);
    pipeline.add_port(i, mac, config_ports[i].addrs);
    uint16_t mtu = 0;
    if (rte_eth_dev_get_mtu(pid, &mtu) == 0 && mtu >= 576) pipeline.set_port_mtu(i, mtu);
  }
  hooks_.started(res);

  MbufSink sink(pool, ports);
  rte_mbuf* rx[kBurst];
  std::vector<rte_mbuf*> tx[RTE_MAX_ETHPORTS];
  uint64_t last_sweep = now_ms();
  while (!stopping_.load(std::memory_order_relaxed)) {
    if (has_commands_.load(std::memory_order_acquire)) {
      std::vector<std::function<void(Pipeline&)>> cmds;
      {
        std::lock_guard<std::mutex> lock(mu_);
        cmds.swap(commands_);
        has_commands_ = false;
      }
      for (auto& c : cmds) c(pipeline);
      pipeline.flush(sink);
    }
    uint64_t now = now_ms();
    for (uint16_t p = 0; p < ports.size(); p++) {
      uint16_t n = rte_eth_rx_burst(ports[p], 0, rx, kBurst);
      for (uint16_t i = 0; i < n; i++) {
        rte_mbuf* m = rx[i];
        uint16_t len = rte_pktmbuf_data_len(m);
        Verdict v = pipeline.process(p, rte_pktmbuf_mtod(m, uint8_t*), len, len + rte_pktmbuf_tailroom(m), now, sink);
        if (v.action == Action::Transmit) {
          // The pipeline wrote a grown frame into the tailroom or shortened it: fix the lengths.
          if (v.len > len)
            rte_pktmbuf_append(m, static_cast<uint16_t>(v.len - len));
          else if (v.len && v.len < len)
            rte_pktmbuf_trim(m, static_cast<uint16_t>(len - v.len));
          tx[v.port].push_back(m);
        } else {
          rte_pktmbuf_free(m);
        }
      }
    }
    for (uint16_t p = 0; p < ports.size(); p++) {
      auto& q = tx[p];
      if (q.empty()) continue;
      uint16_t sent = rte_eth_tx_burst(ports[p], 0, q.data(), static_cast<uint16_t>(q.size()));
      for (size_t i = sent; i < q.size(); i++) rte_pktmbuf_free(q[i]);
      if (sent < q.size()) pipeline.count(kCtr_drop_tx_full, q.size() - sent);
      q.clear();
    }
    if (now - last_sweep >= 100) {
      last_sweep = now;
      pipeline.expire(now);
      auto signals = pipeline.take_signals();
      if (!signals.empty()) hooks_.signals(std::move(signals));
      // Copied outside the lock, published under it: the JS thread never waits on the loop.
      std::vector<uint64_t> counters(pipeline.counters(), pipeline.counters() + kCounterCount);
      counters.push_back(pipeline.conns().size());
      std::vector<ServiceStats> services = pipeline.service_stats();
      std::vector<PortStats> port_stats;
      for (uint16_t pid : ports) {
        rte_eth_stats st{};
        rte_eth_stats_get(pid, &st);
        port_stats.push_back({st.ipackets, st.opackets, st.ibytes, st.obytes, st.imissed, st.ierrors, st.oerrors,
                              st.rx_nombuf});
      }
      std::lock_guard<std::mutex> lock(mu_);
      published_ports_.swap(port_stats);
      published_.swap(counters);
      published_services_.swap(services);
    }
  }
  for (uint16_t p : ports) {
    rte_eth_dev_stop(p);
    rte_eth_dev_close(p);
  }
  rte_eal_cleanup();
}

}  // namespace fulcrum
