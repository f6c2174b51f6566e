#include "core/worker.h"

#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_ring.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <stdexcept>
#include <thread>

namespace fulcrum {

Ring::Ring(const std::string& name, unsigned count) {
  unsigned size = rte_align32pow2(count + 1);
  ssize_t bytes = rte_ring_get_memsize(size);
  if (bytes < 0) throw std::invalid_argument("ring size");
  size_t rounded = (static_cast<size_t>(bytes) + 127) / 128 * 128;
  r_ = static_cast<rte_ring*>(std::aligned_alloc(128, rounded));
  if (!r_) throw std::bad_alloc();
  if (rte_ring_init(r_, name.c_str(), count, RING_F_SC_DEQ | RING_F_EXACT_SZ) != 0) {
    std::free(r_);
    throw std::invalid_argument("ring init");
  }
}

Ring::~Ring() { std::free(r_); }
bool Ring::enqueue(void* item) { return rte_ring_enqueue(r_, item) == 0; }
unsigned Ring::enqueue_burst(void* const* items, unsigned n) {
  return rte_ring_enqueue_burst(r_, items, n, nullptr);
}
unsigned Ring::dequeue(void** items, unsigned n) { return rte_ring_dequeue_burst(r_, items, n, nullptr); }
unsigned Ring::size() const { return rte_ring_count(r_); }
unsigned Ring::capacity() const { return rte_ring_get_capacity(r_); }

namespace {
// maxConnections is the whole dataplane's: each worker's table holds its share.
PipelineConfig worker_config(PipelineConfig cfg, uint16_t index, uint16_t count) {
  cfg.conn_capacity = std::max<uint32_t>(1, (cfg.conn_capacity + count - 1) / count);
  cfg.worker = index;
  cfg.workers = count;
  cfg.announce = index == 0;
  return cfg;
}
}  // namespace

Worker::Worker(const PipelineConfig& cfg, unsigned redirect_ring, unsigned command_ring)
    : pipeline_(cfg),
      redirect_ring_("rdr" + std::to_string(cfg.worker), redirect_ring),
      command_ring_("cmd" + std::to_string(cfg.worker), command_ring) {}

Worker::~Worker() {
  void* items[64];
  unsigned n;
  while ((n = command_ring_.dequeue(items, 64)) > 0)
    for (unsigned i = 0; i < n; i++) delete static_cast<Command*>(items[i]);
}

uint16_t Worker::owner(const uint8_t* frame, uint32_t len) const {
  const uint16_t me = index(), n = count();
  constexpr uint32_t kEth = 14;
  if (n <= 1 || len < kEth + 20) return me;
  uint16_t type;
  std::memcpy(&type, frame + 12, 2);
  if (rte_be_to_cpu_16(type) != 0x0800) return me;
  const uint8_t* ip = frame + kEth;
  uint32_t ihl = (ip[0] & 0x0f) * 4u;
  if ((ip[0] >> 4) != 4 || ihl < 20 || (ip[9] != 6 && ip[9] != 17)) return me;
  uint16_t frag;
  std::memcpy(&frag, ip + 6, 2);
  if (rte_be_to_cpu_16(frag) & 0x3fff) return me;  // fragments: dropped where they land
  if (len < kEth + ihl + 4) return me;
  uint32_t dst;
  std::memcpy(&dst, ip + 16, 4);
  if (!is_local_address(rte_be_to_cpu_32(dst))) return me;
  uint16_t dport;
  std::memcpy(&dport, ip + ihl + 2, 2);
  return LocalPortPool::owner(rte_be_to_cpu_16(dport), n);
}

int Worker::pass_miss(uint16_t origin, uint16_t reason, uint64_t now_ms, uint32_t len) {
  const uint16_t next = static_cast<uint16_t>((index() + 1) % count());
  if (next != origin && now_ms != miss_ms_) miss_ms_ = now_ms, miss_budget_ = kMissPerMs;
  if (next != origin && miss_budget_ > 0) {
    miss_budget_--;
    pipeline_.count(kCtr_miss_passed, 1);
    pipeline_.uncount_rx(len);
    return next;
  }
  pipeline_.count(static_cast<CounterId>(reason), 1);
  if (next == origin) return kMissUnknown;
  pipeline_.count(kCtr_miss_pass_limited, 1);
  return -1;
}

unsigned Worker::redirect_burst(Worker& to, void* const* items, unsigned n) {
  unsigned sent = to.redirect_ring_.enqueue_burst(items, n);
  pipeline_.count(kCtr_redirected, sent);
  if (sent < n) pipeline_.count(kCtr_drop_redirect_ring_full, n - sent);
  return sent;
}

bool Worker::post(Command cmd) {
  auto* c = new Command(std::move(cmd));
  if (command_ring_.enqueue(c)) return true;
  delete c;
  return false;
}

unsigned Worker::run_commands() {
  void* items[32];
  unsigned total = 0, n;
  while ((n = command_ring_.dequeue(items, 32)) > 0) {
    for (unsigned i = 0; i < n; i++) {
      std::unique_ptr<Command> c(static_cast<Command*>(items[i]));
      (*c)(*this);
    }
    total += n;
  }
  return total;
}

void Worker::set_service(std::shared_ptr<const Service> svc) {
  for (uint32_t a : svc->laddrs) laddrs_.insert(a);
  pipeline_.set_service(std::move(svc));
}

void Worker::request_listing() {
  std::lock_guard<std::mutex> lock(list_mu_);
  listing_.clear();
  listing_done_ = false;
  listing_requested_.store(true, std::memory_order_release);
}

void Worker::list_step(uint64_t now_ms) {
  if (!listing_requested_.load(std::memory_order_acquire)) return;
  ConnTable& t = pipeline_.conns();
  std::vector<ConnInfo> chunk;
  uint32_t end = std::min(t.capacity(), list_cursor_ + kListChunk * 16);
  for (; list_cursor_ < end && chunk.size() < kListChunk; list_cursor_++) {
    const Conn& c = t.at(list_cursor_);
    if (!c.in_use) continue;
    chunk.push_back(ConnInfo{c.proto, c.state, index(), c.caddr, c.vaddr, c.laddr, c.daddr, c.cport, c.vport,
                             c.lport, c.dport, c.expires_ms > now_ms ? c.expires_ms - now_ms : 0, c.svc->name,
                             c.dest->key});
  }
  bool done = list_cursor_ >= t.capacity();
  std::lock_guard<std::mutex> lock(list_mu_);
  if (!listing_requested_.load(std::memory_order_relaxed)) {  // withdrawn (the reader gave up)
    list_cursor_ = 0;
    return;
  }
  listing_.insert(listing_.end(), std::make_move_iterator(chunk.begin()), std::make_move_iterator(chunk.end()));
  if (done) {
    list_cursor_ = 0;
    listing_done_ = true;
    listing_requested_.store(false, std::memory_order_relaxed);
    list_cv_.notify_all();
  }
}

std::vector<ConnInfo> Worker::wait_listing(uint64_t timeout_ms, bool* complete) {
  std::unique_lock<std::mutex> lock(list_mu_);
  list_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [this] { return listing_done_; });
  *complete = listing_done_;
  listing_requested_.store(false, std::memory_order_relaxed);
  std::vector<ConnInfo> out;
  out.swap(listing_);
  return out;
}

bool Worker::listing_finished() {
  std::lock_guard<std::mutex> lock(list_mu_);
  return listing_done_;
}

void Worker::publish(std::vector<uint64_t>&& counters, std::vector<ServiceStats>&& services) {
  std::lock_guard<std::mutex> lock(pub_mu_);
  pub_counters_.swap(counters);
  pub_services_.swap(services);
}

void Worker::published(std::vector<uint64_t>& counters, std::vector<ServiceStats>& services) {
  std::lock_guard<std::mutex> lock(pub_mu_);
  counters = pub_counters_;
  services = pub_services_;
}

WorkerSet::WorkerSet(const PipelineConfig& cfg, uint16_t workers, unsigned redirect_ring, unsigned command_ring)
    : services_(workers) {
  for (uint16_t i = 0; i < workers; i++)
    workers_.push_back(std::make_unique<Worker>(worker_config(cfg, i, workers), redirect_ring, command_ring));
}

bool WorkerSet::post(Worker& w, Command cmd) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(post_wait_ms);
  for (;;) {
    if (w.post(cmd)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool WorkerSet::post_all(const std::function<Command(uint16_t)>& make) {
  bool ok = true;
  for (uint16_t i = 0; i < workers_.size(); i++) ok = post(*workers_[i], make(i)) && ok;
  return ok;
}

bool WorkerSet::set_service(const Service& svc) {
  // Several workers: one SharedLoad per server of the service, kept while it stays in it.
  std::unordered_map<std::string, std::shared_ptr<SharedLoad>> loads;
  if (workers_.size() > 1) {
    auto& known = loads_[svc.id];
    for (const auto& d : svc.dests) {
      auto it = known.find(d->key);
      loads[d->key] = it != known.end() ? it->second : std::make_shared<SharedLoad>();
    }
    known = loads;
  }
  const auto expired = expired_.find(svc.id);
  bool ok = post_all([&](uint16_t i) -> Command {
    // Own Dest objects per worker: live counts and statistics are the worker's alone.
    auto copy = std::make_shared<Service>(svc);
    for (auto& d : copy->dests) {
      auto fresh = std::make_shared<Dest>();
      fresh->addr = d->addr;
      fresh->port = d->port;
      fresh->key = d->key;
      fresh->draining = d->draining;
      if (auto it = loads.find(d->key); it != loads.end()) fresh->shared = it->second;
      fresh->serving = d->serving;
      d = fresh;
    }
    const std::vector<std::shared_ptr<Dest>> fresh = copy->dests;
    auto prev = services_[i].find(svc.id);
    DrainUpdates drain = reuse_dests(*copy, prev == services_[i].end() ? nullptr : prev->second.get());
    // A server expired and now served again gets a new Dest: the connections of the old one
    // are the expire's (its walk may still be under way, core/drain.cc), the new one's are
    // not. Its statistics carry over (ipvsadm --stats counts since start).
    std::vector<std::pair<std::shared_ptr<Dest>, std::shared_ptr<Dest>>> renewed;
    if (expired != expired_.end())
      for (size_t k = 0; k < copy->dests.size(); k++) {
        auto& d = copy->dests[k];
        if (d == fresh[k] || !fresh[k]->serving || !expired->second.count(d->key)) continue;
        drain.erase(std::remove_if(drain.begin(), drain.end(), [&d](const DrainUpdate& u) { return u.dest == d; }),
                    drain.end());
        renewed.emplace_back(d, fresh[k]);
        d = fresh[k];
      }
    services_[i][svc.id] = copy;
    std::shared_ptr<const Service> snapshot = copy;
    return [snapshot, drain, renewed](Worker& w) {
      apply_drain(drain);  // on the worker: the Dests it keeps are written by it alone
      for (const auto& [from, to] : renewed) {
        to->conns = from->conns;
        to->in_pkts = from->in_pkts, to->out_pkts = from->out_pkts;
        to->in_bytes = from->in_bytes, to->out_bytes = from->out_bytes;
      }
      w.set_service(snapshot);
    };
  });
  // Expired servers this snapshot serves again (renewed above) or no longer lists (a later
  // one that lists them again makes new Dests anyway) are forgotten.
  if (expired != expired_.end()) {
    auto& keys = expired->second;
    for (auto k = keys.begin(); k != keys.end();) {
      auto d = std::find_if(svc.dests.begin(), svc.dests.end(), [&k](const auto& x) { return x->key == *k; });
      k = d == svc.dests.end() || (*d)->serving ? keys.erase(k) : std::next(k);
    }
    if (keys.empty()) expired_.erase(expired);
  }
  return ok;
}

bool WorkerSet::remove_service(uint32_t id) {
  loads_.erase(id);
  expired_.erase(id);
  return post_all([&](uint16_t i) -> Command {
    services_[i].erase(id);
    return [id](Worker& w) { w.pipeline().remove_service(id); };
  });
}

bool WorkerSet::expire_server(uint32_t id, const std::string& server) {
  expired_[id].insert(server);
  return post_all([&](uint16_t) -> Command {
    return [id, server](Worker& w) { w.pipeline().expire_server(id, server); };
  });
}

bool WorkerSet::drain_server(uint32_t id, const std::string& server, uint64_t idle_ms, uint64_t deadline_ms) {
  return post_all([&](uint16_t) -> Command {
    return [id, server, idle_ms, deadline_ms](Worker& w) { w.pipeline().drain_server(id, server, idle_ms, deadline_ms); };
  });
}

bool WorkerSet::add_route(const Route& r) {
  return post_all([&](uint16_t) -> Command { return [r](Worker& w) { w.pipeline().add_route(r); }; });
}

bool WorkerSet::add_neighbor(uint16_t port, uint32_t ip, const Mac& mac) {
  return post_all(
      [&](uint16_t) -> Command { return [port, ip, mac](Worker& w) { w.pipeline().add_neighbor(port, ip, mac); }; });
}

void WorkerSet::share_learned(Worker& w) {
  if (workers_.size() < 2) return;
  std::vector<LearnedNeighbor> learned = w.pipeline().take_learned();
  for (const LearnedNeighbor& n : learned)
    for (auto& other : workers_)
      if (other.get() != &w)
        other->post([n](Worker& x) { x.pipeline().learn_neighbor(n.port, n.ip, n.mac); });  // full: the next ARP teaches it
}

std::vector<uint64_t> WorkerSet::sum_counters(const std::vector<std::vector<uint64_t>>& per_worker) {
  std::vector<uint64_t> out;
  for (const auto& c : per_worker) {
    if (out.size() < c.size()) out.resize(c.size(), 0);
    for (size_t i = 0; i < c.size(); i++) out[i] += c[i];
  }
  return out;
}

std::vector<ServiceStats> WorkerSet::merge_services(const std::vector<std::vector<ServiceStats>>& per_worker) {
  std::vector<ServiceStats> out;
  std::unordered_map<std::string, size_t> by_name;
  for (const auto& list : per_worker)
    for (const ServiceStats& s : list) {
      auto it = by_name.find(s.name);
      if (it == by_name.end()) {
        by_name.emplace(s.name, out.size());
        out.push_back(s);
        continue;
      }
      ServiceStats& m = out[it->second];
      m.live_conns += s.live_conns;
      for (const Dest& d : s.dests) {
        auto same = std::find_if(m.dests.begin(), m.dests.end(), [&d](const Dest& x) { return x.key == d.key; });
        if (same == m.dests.end()) {
          m.dests.push_back(d);
          continue;
        }
        same->active += d.active;
        same->inactive += d.inactive;
        same->conns += d.conns;
        same->in_pkts += d.in_pkts;
        same->out_pkts += d.out_pkts;
        same->in_bytes += d.in_bytes;
        same->out_bytes += d.out_bytes;
      }
    }
  return out;
}

}  // namespace fulcrum
