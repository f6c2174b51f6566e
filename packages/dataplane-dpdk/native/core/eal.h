// EAL and ports: rte_eal_init on a thread of our own (EAL pins it as the main lcore), the
// ports configured with one RX and one TX queue, and the poll loop that runs the Pipeline.
// Control commands reach the loop through a queue drained between bursts. One per process:
// EAL cannot be initialised again after rte_eal_cleanup.
#pragma once
#include <cstddef>
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/pipeline.h"

namespace fulcrum {

enum EalError : int {
  kEalOk = 0,
  kEalAlreadyStarted = 1,
  kEalInitFailed = 2,
  kEalNoPorts = 3,
  kEalPortSetupFailed = 4,
  kEalMempoolFailed = 5,
};

// A port as configured: its DPDK device name (the vdev name before the first comma, or the
// PCI address) and its addresses. Pipeline port i is configured port i, whatever id DPDK gave it.
struct EalPort {
  std::string device;
  std::vector<InterfaceAddress> addrs;
};

// rte_eth_stats of one port, as last published by the loop.
struct PortStats {
  uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

struct EalStartResult {
  int code;
  std::string message;
  std::vector<Mac> macs;
};

struct EalHooks {
  std::function<void(const EalStartResult&)> started;
  std::function<void(std::vector<HealthSignal>&&)> signals;
};

class EalRunner {
 public:
  // Starts the EAL thread; `hooks.started` is called from it once ports run (or failed).
  int start(std::vector<std::string> args, std::vector<EalPort> ports, const PipelineConfig& cfg, EalHooks hooks);
  // Stops the loop, closes the ports, cleans EAL up and joins the thread. Idempotent.
  void stop();
  // Runs `cmd` on the EAL thread between bursts.
  void post(std::function<void(Pipeline&)> cmd);
  bool running() const { return running_.load(); }
  // Counters as last published by the loop (read without stopping it).
  std::vector<uint64_t> counters();
  std::vector<ServiceStats> service_stats();
  std::vector<PortStats> port_stats();

 private:
  void run(std::vector<std::string> args, std::vector<EalPort> ports, PipelineConfig cfg);
  std::thread thread_;
  std::atomic<bool> started_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> has_commands_{false};
  std::mutex mu_;
  std::vector<std::function<void(Pipeline&)>> commands_;
  std::vector<uint64_t> published_;
  std::vector<ServiceStats> published_services_;
  std::vector<PortStats> published_ports_;
  EalHooks hooks_;
};

}  // namespace fulcrum
