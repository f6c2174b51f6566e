// Worker lcores: one Pipeline per worker, each with its own tables and its slice of every
// local-port pool, and two rings (DPVS's design): a redirect ring that other workers fill
// with frames that belong to this one (a server's reply lands on whatever queue the NIC or
// the kernel picked; its destination local port names the owner), and a command ring that
// carries control changes (immutable snapshots) applied between bursts. No lock on the
// packet path. The same code runs the EAL workers and the multi-worker injection harness,
// so redirect is tested packet by packet. Knows nothing of Node.
#pragma once
#include <cstddef>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/pipeline.h"

struct rte_ring;

namespace fulcrum {

class Worker;
using Command = std::function<void(Worker&)>;

// A multi-producer, single-consumer ring of pointers (rte_ring) in ordinary memory, so it
// needs no EAL: the harness uses the very rings the EAL workers do. Holds exactly `count`.
class Ring {
 public:
  Ring(const std::string& name, unsigned count);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  bool enqueue(void* item);  // any thread
  unsigned enqueue_burst(void* const* items, unsigned n);  // any thread; how many fitted
  unsigned dequeue(void** items, unsigned n);  // the consumer only
  unsigned size() const;
  unsigned capacity() const;

 private:
  rte_ring* r_;
};

// One row of the connection listing (ipvsadm -lnc), copied out by the owning worker.
struct ConnInfo {
  uint8_t proto;
  uint8_t state;
  uint16_t worker;
  uint32_t caddr, vaddr, laddr, daddr;
  uint16_t cport, vport, lport, dport;
  uint64_t expires_in_ms;
  std::string service;
  std::string server;
};

class Worker {
 public:
  static constexpr unsigned kListChunk = 256;  // connections copied per loop iteration

  Worker(const PipelineConfig& cfg, unsigned redirect_ring, unsigned command_ring);
  ~Worker();
  uint16_t index() const { return pipeline_.config().worker; }
  uint16_t count() const { return pipeline_.config().workers; }
  Pipeline& pipeline() { return pipeline_; }
  const Pipeline& pipeline() const { return pipeline_; }

  // The worker that owns a frame received by this one: a TCP or UDP reply to a local
  // address belongs to the worker whose slice holds its destination port; anything else
  // (client flows, which RSS or the kernel's fanout keep on one queue; ARP; ICMP) is
  // processed where it arrives.
  uint16_t owner(const uint8_t* frame, uint32_t len) const;
  // Hands frames to `to`'s redirect ring in one enqueue: counts `redirected` for those that
  // fitted (the first ones, returned) and `drop_redirect_ring_full` for the rest, which
  // the caller frees.
  unsigned redirect_burst(Worker& to, void* const* items, unsigned n);
  unsigned take_redirected(void** items, unsigned n) { return redirect_ring_.dequeue(items, n); }

  // A segment the pipeline missed (Action::Miss). Its connection may live on another worker
  // when the queue choice moved a client flow: af_packet's fanout rolls a flow over to
  // another socket when its ring is full, and a NIC's RSS table can be reprogrammed. The
  // segment goes round the workers once, from `origin` (the one that received it first):
  // returns the next worker to try; kMissUnknown when every worker has seen it (no
  // connection anywhere: the caller may answer it, Pipeline::reset_unknown), or -1 when this
  // worker already passed kMissPerMs this millisecond (an ACK flood must not multiply its
  // cost by the number of workers). Unless passed on, `reason` is counted here and the caller
  // frees it. A segment passed on counts as received (`len` bytes) by the worker that
  // handles it last.
  int pass_miss(uint16_t origin, uint16_t reason, uint64_t now_ms, uint32_t len);
  static constexpr int kMissUnknown = -2;
  static constexpr uint32_t kMissPerMs = 256;
  unsigned redirect_backlog() const { return redirect_ring_.size(); }

  // Any thread: queues a command for this worker; false when its ring is full.
  bool post(Command cmd);
  // On the worker between bursts: runs the queued commands; returns how many ran.
  unsigned run_commands();

  // Commands the workers run (called by them, through post()).
  void set_service(std::shared_ptr<const Service> svc);
  // Local addresses ever served: grow only, as replies to a removed one still arrive
  // for the connections it keeps until they end.
  bool is_local_address(uint32_t ip) const { return laddrs_.count(ip) != 0; }

  // Connection listing without stalling the worker: the control side asks, the worker
  // copies kListChunk connections per loop iteration (list_step), the control side waits.
  void request_listing();
  void list_step(uint64_t now_ms);
  // Waits up to `timeout_ms` for the listing; returns it (partial when the worker did not finish).
  std::vector<ConnInfo> wait_listing(uint64_t timeout_ms, bool* complete);
  bool listing_finished();

  // The published view (the loop copies its counters and stats here every 100 ms).
  void publish(std::vector<uint64_t>&& counters, std::vector<ServiceStats>&& services);
  void published(std::vector<uint64_t>& counters, std::vector<ServiceStats>& services);

 private:
  Pipeline pipeline_;
  Ring redirect_ring_;
  Ring command_ring_;
  std::unordered_set<uint32_t> laddrs_;
  uint64_t miss_ms_ = ~uint64_t{0};  // the millisecond miss_budget_ belongs to
  uint32_t miss_budget_ = 0;
  std::atomic<bool> listing_requested_{false};
  uint32_t list_cursor_ = 0;
  std::mutex list_mu_;
  std::condition_variable list_cv_;
  std::vector<ConnInfo> listing_;
  bool listing_done_ = false;
  std::mutex pub_mu_;
  std::vector<uint64_t> pub_counters_;
  std::vector<ServiceStats> pub_services_;
};

// The frames of one RX burst that belong to other workers, handed to each owner with one
// ring operation at the end of the burst (instead of one per frame).
class RedirectBatch {
 public:
  explicit RedirectBatch(size_t workers) : items_(workers) {
    for (auto& v : items_) v.reserve(64);
  }
  void add(uint16_t owner, void* item) { items_[owner].push_back(item); }
  // Hands every owner its frames; `drop(item)` frees each one a full ring refused.
  template <typename Workers, typename Drop>
  void flush(Worker& from, Workers& workers, Drop drop) {
    for (size_t o = 0; o < items_.size(); o++) {
      auto& v = items_[o];
      if (v.empty()) continue;
      unsigned n = static_cast<unsigned>(v.size());
      unsigned sent = from.redirect_burst(workers.at(o), v.data(), n);
      for (unsigned i = sent; i < n; i++) drop(v[i]);
      v.clear();
    }
  }

 private:
  std::vector<std::vector<void*>> items_;
};

// The control side of a set of workers, on one thread (JavaScript's): every worker gets
// its own copy of each snapshot with its own Dest objects (its statistics); the
// least-connections counts they weigh are shared between them (SharedLoad, service.h).
class WorkerSet {
 public:
  WorkerSet(const PipelineConfig& cfg, uint16_t workers, unsigned redirect_ring, unsigned command_ring);
  size_t size() const { return workers_.size(); }
  Worker& at(size_t i) { return *workers_[i]; }

  // Each returns false when a command ring stayed full (the workers are not running).
  bool set_service(const Service& svc);
  bool remove_service(uint32_t id);
  // Each worker resets its own connections to `server`, a chunk of its table per loop
  // iteration (core/drain.cc expire_walk); a later snapshot serving `server` again gives it
  // new Dests, so the connections it then takes are not the expire's.
  bool expire_server(uint32_t id, const std::string& server);
  // Each worker drains its own connections to `server` (core/drain.cc); times from now on its clock.
  bool drain_server(uint32_t id, const std::string& server, uint64_t idle_ms, uint64_t deadline_ms);
  bool add_route(const Route& r);
  bool add_neighbor(uint16_t port, uint32_t ip, const Mac& mac);
  // On worker `w` after a burst: neighbours it learned go to the others.
  void share_learned(Worker& w);

  // Sums over the workers (counters; services by name, servers by key).
  static std::vector<uint64_t> sum_counters(const std::vector<std::vector<uint64_t>>& per_worker);
  static std::vector<ServiceStats> merge_services(const std::vector<std::vector<ServiceStats>>& per_worker);

  // How long post() retries a full command ring before giving up (0 = never retry: the harness).
  uint32_t post_wait_ms = 0;

 private:
  bool post_all(const std::function<Command(uint16_t)>& make);
  bool post(Worker& w, Command cmd);
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unordered_map<uint32_t, std::shared_ptr<const Service>>> services_;
  // Per service id, per server key: the counts least-connections plans share (several workers).
  std::unordered_map<uint32_t, std::unordered_map<std::string, std::shared_ptr<SharedLoad>>> loads_;
  // Per service id: servers expired that the snapshots still list without serving them.
  std::unordered_map<uint32_t, std::unordered_set<std::string>> expired_;
};

}  // namespace fulcrum
