// EAL and ports: rte_eal_init on a thread of our own (EAL pins it as the main lcore). Every
// lcore of the EAL `-l` list is a worker: the main lcore runs worker 0 (and publishes port
// statistics), the others run workers 1..n-1. Each port gets one RX and one TX queue per
// worker; each worker polls its own queues and runs its own Pipeline (see worker.h for the
// redirect and command rings). One per process: EAL cannot be initialised again after
// rte_eal_cleanup.
#pragma once
#include <cstddef>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/pipeline.h"
#include "core/steering.h"
#include "core/worker.h"

namespace fulcrum {

enum EalError : int {
  kEalOk = 0,
  kEalAlreadyStarted = 1,
  kEalInitFailed = 2,
  kEalNoPorts = 3,
  kEalPortSetupFailed = 4,
  kEalMempoolFailed = 5,
  kEalTooFewQueues = 6,
};

// How the workers run, besides the Pipeline's own configuration.
struct EalOptions {
  unsigned redirect_ring = 4096;  // frames per worker's redirect ring
  // After `idle_polls` polls in a row that found nothing, sleep `idle_sleep_us` between
  // polls (0 = busy-poll always, DPDK's default).
  unsigned idle_polls = 0;
  unsigned idle_sleep_us = 0;
};

// A port as configured: its DPDK device name (the vdev name before the first comma, or the
// PCI address) and its addresses. Pipeline port i is configured port i, whatever id DPDK gave it.
struct EalPort {
  std::string device;
  std::vector<InterfaceAddress> addrs;
  // Descriptors per RX / TX queue; 0: the driver's preferred size, at least 1024.
  uint16_t rx_descriptors = 0;
  uint16_t tx_descriptors = 0;
};

// rte_eth_stats of one port, as last published by the loop.
struct PortStats {
  uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};

struct EalStartResult {
  int code;
  std::string message;
  std::vector<Mac> macs;
  uint16_t workers = 0;
  uint16_t idle_lcores = 0;  // lcores given in -l that run no worker, and why
  std::string idle_reason;
  std::vector<bool> steering;             // per port: replies steered by rte_flow rules
  std::vector<std::string> no_steering;   // per port: why not (the PMD's message)
  std::vector<uint16_t> rx_descriptors;   // per port: descriptors per RX queue, as set up
  std::vector<uint16_t> tx_descriptors;   // per port: descriptors per TX queue, as set up
};

struct EalHooks {
  std::function<void(const EalStartResult&)> started;
  std::function<void(std::vector<HealthSignal>&&)> signals;
  std::function<void(std::vector<ConnEvent>&&)> conn_events;
};

class EalRunner {
 public:
  EalRunner();
  ~EalRunner();
  // Starts the EAL thread; `hooks.started` is called from it once ports run (or failed).
  int start(std::vector<std::string> args, std::vector<EalPort> ports, const PipelineConfig& cfg,
            const EalOptions& opts, EalHooks hooks);
  // Stops the loop, closes the ports, cleans EAL up and joins the thread. Idempotent.
  void stop();
  bool running() const { return running_.load(); }
  // The workers' control side, once started (null before): one thread (JavaScript's) posts.
  WorkerSet* workers() { return workers_.get(); }
  // Counters and service statistics summed over the workers, as last published by them
  // (every 100 ms), and per worker; read without stopping anything.
  std::vector<uint64_t> counters();
  std::vector<std::vector<uint64_t>> worker_counters();
  std::vector<ServiceStats> service_stats();
  std::vector<PortStats> port_stats();
  // Steering rules for the local addresses of a service (control thread); returns how many.
  unsigned steer(const std::vector<uint32_t>& laddrs);
  // The connection listing: every worker copies its table out a chunk per loop iteration.
  // The connection listing without blocking anyone: ask every worker to copy its table out
  // (a chunk per loop iteration), poll until they are done, then take what they copied
  // (partial, `complete` false, when taken before they finished).
  bool request_connections();
  bool connections_ready();
  std::vector<ConnInfo> take_connections(bool* complete);

 private:
  struct Io;
  void run(std::vector<std::string> args, std::vector<EalPort> ports, PipelineConfig cfg);
  void loop(uint16_t worker);
  static int loop_entry(void* arg);
  std::thread thread_;
  std::atomic<bool> started_{false};
  std::atomic<bool> running_{false};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::vector<PortStats> published_ports_;
  EalHooks hooks_;
  EalOptions opts_;
  std::unique_ptr<WorkerSet> workers_;
  std::unique_ptr<Io> io_;
  Steering steering_;
};

}  // namespace fulcrum
