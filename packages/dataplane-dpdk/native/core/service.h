// A virtual service as the workers execute it: an immutable snapshot (servers, plan, local
// addresses) swapped as a whole. Dest objects carry live counts and outlive snapshots:
// a new snapshot reuses the Dest of a server it keeps, so counts and connections carry over.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/insert.h"
#include "core/sched.h"

namespace fulcrum {

// A server's ActiveConn/InActConn over every worker (set up only when there are several):
// least-connections plans read these, so lc, wlc, sed and nq weigh the whole balancer's
// connections, as IPVS does, rather than one lcore's (DPVS keeps them per lcore).
struct SharedLoad {
  std::atomic<uint32_t> active{0};
  std::atomic<uint32_t> inactive{0};
};

struct Dest {
  uint32_t addr = 0;  // host order
  uint16_t port = 0;
  std::string key;  // "address:port", as the kernel names servers
  // This worker's own counts (its statistics), and the shared ones when there are several.
  uint32_t active = 0;
  uint32_t inactive = 0;
  std::shared_ptr<SharedLoad> shared;
  bool draining = false;
  // ipvsadm --stats: connections since start, packets and IP bytes each way.
  uint64_t conns = 0;
  uint64_t in_pkts = 0, out_pkts = 0, in_bytes = 0, out_bytes = 0;

  // What a least-connections plan weighs.
  ServerLoad load() const {
    if (shared)
      return ServerLoad{shared->active.load(std::memory_order_relaxed),
                        shared->inactive.load(std::memory_order_relaxed)};
    return ServerLoad{active, inactive};
  }
  // IPVS counts a connection inactive until it is ESTABLISHED, and again once it leaves it.
  void add_inactive(int32_t n) {
    inactive += static_cast<uint32_t>(n);
    if (shared) shared->inactive.fetch_add(static_cast<uint32_t>(n), std::memory_order_relaxed);
  }
  void add_active(int32_t n) {
    active += static_cast<uint32_t>(n);
    if (shared) shared->active.fetch_add(static_cast<uint32_t>(n), std::memory_order_relaxed);
  }

  // Drain timing (core/drain.cc), on each worker's own Dest: a connection idle for
  // drain_idle_ms is reset, and every one left at drain_deadline_at_ms (the worker's clock).
  // `serving` (weight > 0 in the snapshot) ends a drain: the server is back.
  bool serving = false;
  bool drain_timed = false;
  uint64_t drain_idle_ms = 0;
  uint64_t drain_deadline_at_ms = 0;
};

struct Service {
  uint32_t id = 0;
  std::string name;
  uint8_t proto = 6;  // IPPROTO_TCP or IPPROTO_UDP
  uint32_t vip = 0;   // host order
  uint16_t vport = 0;
  uint32_t max_conns = 0;  // 0 = unlimited
  std::vector<std::shared_ptr<Dest>> dests;  // index = plan index
  Plan plan;
  std::vector<uint32_t> laddrs;  // host order
  // The client's address toward the servers: passthrough toa or proxy-protocol (core/insert.h).
  InsertSettings insert;
  bool synproxy = false;         // SYN cookies first (core/synproxy.h)
};

// Per-worker scheduling state of a service: the sequence cursor and the local-address cursor.
struct ServiceState {
  std::shared_ptr<const Service> svc;
  uint32_t cursor = 0;
  uint32_t laddr_cursor = 0;
  uint32_t conns = 0;
};

}  // namespace fulcrum

namespace fulcrum {

// Gives `next` the Dest objects of `prev` for the servers it keeps (same key), so live
// counts and the connections pointing at them carry over a snapshot swap. Kept Dests are
// shared with the workers: their new `draining` and `serving` flags are returned, for the
// worker to set.
struct DrainUpdate {
  std::shared_ptr<Dest> dest;
  bool draining;
  bool serving;
};
using DrainUpdates = std::vector<DrainUpdate>;
inline DrainUpdates reuse_dests(Service& next, const Service* prev) {
  DrainUpdates updates;
  if (!prev) return updates;
  for (auto& d : next.dests)
    for (const auto& o : prev->dests)
      if (o->key == d->key) {
        updates.push_back(DrainUpdate{o, d->draining, d->serving});
        d = o;
        break;
      }
  return updates;
}

inline void apply_drain(const DrainUpdates& updates) {
  for (const auto& u : updates) {
    u.dest->draining = u.draining;
    u.dest->serving = u.serving;
    if (u.serving) u.dest->drain_timed = false;  // back in service: its connections stay
  }
}

}  // namespace fulcrum
