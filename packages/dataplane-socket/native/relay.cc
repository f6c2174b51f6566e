// The socket dataplane's native relay: moves bytes between the two sockets of a connection on
// threads of its own (one epoll loop per thread), so that relaying costs no JavaScript, no
// libuv and no Node stream per chunk, and uses every core.
//
// Two ways in:
// - hand-over (add): TypeScript accepted and connected with Node's sockets; once the
//   connection can no longer be retried it hands the two descriptors over;
// - native accept (listen, connect): the relay threads accept on the service's listening
//   socket and report each client; TypeScript schedules it (plans, persistence, limits) and
//   says where to connect; the relay connects, keeps what the client sent until the server's
//   first byte, and reports a server that fails before answering so that TypeScript can
//   retry on another one (the relay replays the client's bytes) or give up.
// Either way TypeScript keeps the decisions (timeouts, drain, retries, the PROXY header,
// persistence, events); the relay reports, in batches, what it needs to keep its table
// right (bytes and reads per direction, FINs, the first server byte, connects, failures,
// the end and why), and TypeScript asks it to end a connection.
//
// Per direction the bytes go either through one per-thread buffer (read, then write at once;
// only what the destination did not take is kept, and the source is not read again until it
// was written: back-pressure) or through a pipe with splice(2). Sockets are registered
// edge-triggered once and never modified.
#include <napi.h>
#include <uv.h>
#include <chrono>
#include <algorithm>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "fulcrum/plan-hash.h"

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr int kFields = 8;
// A native pick in an accept record: plan generation * kGenScale + server index.
constexpr double kGenScale = 16777216.0;
// Records that need no decision reach the event loop at most this long after they were made,
// in one wake-up for all of them (ms). 4 rather than 1: a quarter of the wake-ups, the event
// loop's CPU per connection -25 %, and the new-connection p99 lower in 9 of 12 paired rounds
// (decision 0006); what must be decided soon wakes it at once anyway.
constexpr int kLazyWakeMs = 4;

// What a record reports (its second field). Layouts, after id and kind:
//   kStats, kClientEof, kServerEof, kAnswered, kClosed: arg, inBytes, outBytes, inReads, outReads
//   kAccept: listener, client port, client address (string index), local address (string index
//            or -1), accept sequence number (across threads), the server the relay picked
//            and connects to (plan generation * kGenScale + server index), or -1: TypeScript
//            schedules this client and sends a connect
//   kConnected: attempt
//   kServerFailed: attempt, errno, replayable (0/1)
//   kAcceptError (id 0): listener, errno
enum Kind {
  kStats = 0,
  kClientEof = 1,
  kServerEof = 2,
  kAnswered = 3,
  kClosed = 4,
  kAccept = 5,
  kConnected = 6,
  kServerFailed = 7,
  kAcceptError = 8,
};
// How TypeScript asks for a connection to end.
enum CloseMode { kFin = 0, kReset = 1, kAbort = 2 };
// Closed records: arg = flags | side << 2 | errno << 4.
enum ClosedFlag { kWasReset = 1, kWasAborted = 2 };
// Where a connection is: relaying, or (native accept) waiting for TypeScript to say where to
// connect, or connecting.
enum Phase { kRelay = 0, kWaiting = 1, kConnecting = 2 };
enum Tag { kSide = 1, kListener = 2 };
// What a plan the relay executes itself does (TypeScript's SchedulePlan kinds it takes over).
enum PlanKind { kPlanNone = 0, kPlanSequence = 1, kPlanHash = 2 };

struct Server {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool available = false;
};

// A service's SchedulePlan and servers as TypeScript last pushed them (immutable once
// pushed; a new push replaces it). The relay picks and connects at accept for the clients
// the plan decides alone; anything else (no plan, no available server) goes to TypeScript.
struct Plan {
  double gen = 0;
  int kind = kPlanNone;
  std::vector<int> entries;  // sequence, or hash table (-1: no server)
  std::vector<int> fields;   // hash fields
  std::vector<Server> servers;
};

struct Conn;

// The epoll cookie of one socket of a connection.
struct Side {
  int tag;
  Conn* conn;
  int index;  // 0 client, 1 server
  int fd;
  bool rdhup;  // the peer's FIN was seen: read until 0, not just until a short read
};

// A listening socket, registered in every thread (EPOLLEXCLUSIVE). Never freed before the
// relay stops: a thread may still hold an event for one that was just closed.
struct Listener {
  int tag;
  double id;
  int fd;
  bool wildcard;
  sockaddr_storage addr{};  // the address it is bound to (a hash plan's destination address)
  std::atomic<bool> closed{false};
  std::mutex planMu;  // for `plan` (read once per batch of accepts)
  std::shared_ptr<const Plan> plan;
  std::atomic<uint64_t> cursor{0};  // a sequence plan's, shared by the threads (accept order)
};

// Bytes flowing from socket `src` to socket `dst`.
struct Dir {
  int src;
  int dst;
  // what dst has not taken yet: a buffer, then (splice) a pipe
  char* buf = nullptr;
  size_t off = 0;
  size_t len = 0;
  int pipe[2] = {-1, -1};
  size_t inPipe = 0;
  bool readable = true;  // src may have data (edge-triggered: not read to EAGAIN yet)
  bool writable = true;  // dst may take data
  bool srcEof = false;   // read returned 0
  bool shut = false;     // shutdown(dst, SHUT_WR) done
  uint64_t bytes = 0;    // since the last report
  uint64_t reads = 0;
  // With splice on, a direction switches to it once one read filled the whole buffer: a
  // bulk transfer. Short exchanges stay copied (a pipe per direction costs more for them).
  bool bulk = false;

  size_t pending() const { return len + inPipe; }
  void Drop() {
    std::free(buf);
    buf = nullptr;
    off = len = 0;
  }
};

struct Conn {
  double id;
  Side side[2];
  Dir dir[2];  // 0: client -> server, 1: server -> client
  bool answered = false;
  bool closing = false;  // drain: no more reads, FIN both ways after what is queued
  bool dead = false;
  bool dirty = false;
  size_t dirtyAt = 0;
  // native accept
  bool accepted = false;
  int phase = kRelay;
  double attempt = 0;
  std::string header;       // the PROXY header of the current attempt
  std::string early;        // client bytes not yet given to a server, or kept for a replay
  bool keepReplay = false;  // `early` holds every client byte, until the first server byte
  bool ackHeld = false;     // the connect left its handshake's ACK to the first bytes sent
  size_t replayLimit = 0;
  size_t earlyLimit = 0;  // the client is not read beyond this while no server takes its bytes
  uint64_t clientTotal = 0;
  // accepted by another thread: what the accept record says, sent by the owning thread
  double listener = 0;
  int clientPort = 0;
  std::string clientAddress;
  std::string localAddress;
  bool hasLocal = false;
  // the server the accepting thread picked (native plan), for the owning thread to connect to
  sockaddr_storage pickAddr{};
  socklen_t pickLen = 0;
};

struct Command {
  enum Op { kAdd, kAdopt, kClose, kStop, kConnect, kFailServer } op;
  Conn* conn = nullptr;  // kAdd, kAdopt
  double id = 0;
  int mode = 0;  // kClose: CloseMode; kFailServer: errno
  double attempt = 0;
  sockaddr_storage dest{};
  socklen_t destLen = 0;
  sockaddr_storage local{};
  socklen_t localLen = 0;
  std::string header;
};

struct Settings {
  bool splice;
  bool acceptLocal;  // an accepted client stays on the accepting thread
  bool noDelay;
  size_t replayLimit;  // 0: no replay
  size_t earlyLimit;
};

class Relay;

std::string AddressOf(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, text, sizeof text);
  } else if (ss.ss_family == AF_INET6) {
    auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    // A v4 client on a dual-stack listener: ::ffff:10.0.0.1 -> 10.0.0.1.
    if (IN6_IS_ADDR_V4MAPPED(&a.sin6_addr)) {
      inet_ntop(AF_INET, &a.sin6_addr.s6_addr[12], text, sizeof text);
    } else {
      inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof text);
    }
  }
  return text;
}

int PortOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
  return 0;
}

// "10.0.0.1" / "::1" and a port into a sockaddr; false when the text is no address.
bool ParseAddress(const std::string& text, int port, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  auto& a4 = reinterpret_cast<sockaddr_in&>(ss);
  if (inet_pton(AF_INET, text.c_str(), &a4.sin_addr) == 1) {
    a4.sin_family = AF_INET;
    a4.sin_port = htons(port);
    len = sizeof(sockaddr_in);
    return true;
  }
  auto& a6 = reinterpret_cast<sockaddr_in6&>(ss);
  if (inet_pton(AF_INET6, text.c_str(), &a6.sin6_addr) == 1) {
    a6.sin6_family = AF_INET6;
    a6.sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// An address's network-order bytes as planHash reads them: 4 for IPv4 — and for an IPv4
// client on a dual-stack socket when `unmap` (TypeScript sees it as dotted IPv4) — else 16.
void AddressBytes(const sockaddr_storage& ss, bool unmap, const uint8_t** bytes, uint8_t* len) {
  if (ss.ss_family == AF_INET) {
    *bytes = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in&>(ss).sin_addr);
    *len = 4;
    return;
  }
  const in6_addr& a6 = reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr;
  const bool mapped = unmap && IN6_IS_ADDR_V4MAPPED(&a6);
  *bytes = mapped ? &a6.s6_addr[12] : a6.s6_addr;
  *len = mapped ? 4 : 16;
}

// The kernel's planHash, from the header @fulcrum/kernel exports for native dataplanes.
uint32_t PlanHash(const std::vector<int>& fields, const sockaddr_storage& client,
                  const sockaddr_storage& dest, bool unmapDest) {
  fulcrum::kernel::PlanHashTuple t{};
  AddressBytes(client, true, &t.source_address, &t.source_address_len);
  AddressBytes(dest, unmapDest, &t.destination_address, &t.destination_address_len);
  t.source_port = static_cast<uint16_t>(PortOf(client));
  t.destination_port = static_cast<uint16_t>(PortOf(dest));
  return fulcrum::kernel::plan_hash(fields.data(), fields.size(), t);
}

// The server a plan picks for a client, as TypeScript's schedule() does for a first attempt:
// a sequence moves its cursor past servers that may not take connections; a hash slot whose
// server may not take any schedules nothing. -1: TypeScript decides (and refuses, or not).
int Pick(const Plan& p, Listener* l, const sockaddr_storage& client, const sockaddr_storage& local,
         bool hasLocal) {
  size_t n = p.entries.size();
  if (n == 0) return -1;
  if (p.kind == kPlanSequence) {
    for (size_t k = 0; k < n; k++) {
      int i = p.entries[l->cursor.fetch_add(1, std::memory_order_relaxed) % n];
      if (p.servers[i].available) return i;
    }
    return -1;
  }
  if (p.kind == kPlanHash) {
    // TypeScript hashes the listener's configured address, or (wildcard) the local address
    // of the connection as read back, IPv4-mapped shown as IPv4.
    const sockaddr_storage& dest = hasLocal ? local : l->addr;
    int i = p.entries[PlanHash(p.fields, client, dest, hasLocal) % n];
    return i >= 0 && p.servers[i].available ? i : -1;
  }
  return -1;
}

class Worker {
 public:
  Worker(Relay* owner, const Settings& settings, int index, int count)
      : owner_(owner), settings_(settings), index_(index), count_(count) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    reserve_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    reserveConnect_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    epoll_ctl(ep_, EPOLL_CTL_ADD, efd_, &ev);
    scratch_ = static_cast<char*>(std::malloc(kChunk));
    thread_ = std::thread([this] {
      // Named, so that top -H, perf and /proc/<pid>/task tell the relay threads apart.
      char name[16];
      std::snprintf(name, sizeof name, "fulcrum-relay%d", index_);
      pthread_setname_np(pthread_self(), name);
      Run();
    });
  }

  // Stopping is two steps, so that no thread posts to one already gone: every thread is
  // asked to stop, then each is joined and what was posted to it late is closed.
  void RequestStop() {
    Command stop;
    stop.op = Command::kStop;
    Post(std::move(stop));
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
    for (Command& cmd : cmds_) {
      if ((cmd.op != Command::kAdd && cmd.op != Command::kAdopt) || !cmd.conn) continue;
      for (Side& s : cmd.conn->side)
        if (s.fd >= 0) close(s.fd);
      delete cmd.conn;
    }
    cmds_.clear();
  }

  ~Worker() {
    Join();
    close(ep_);
    close(efd_);
    if (reserve_ >= 0) close(reserve_);
    if (reserveConnect_ >= 0) close(reserveConnect_);
    std::free(scratch_);
  }

  // Commands reach a thread through cmds_; only a thread asleep in epoll_wait needs the
  // eventfd write that wakes it: a busy one takes them before it would sleep again. (Each
  // write is a system call, and wakes the thread at once, which then often preempts the
  // writer on a machine with few cores; HAProxy too wakes only threads that sleep.)
  void Post(Command&& cmd) {
    Queue(std::move(cmd));
    Flush();
  }

  // Queues a command without waking the thread: Flush() wakes it once for all that were
  // queued (a batch of connects, or of accepted clients, costs one wake-up at most).
  void Queue(Command&& cmd) {
    std::lock_guard<std::mutex> lk(cmdMu_);
    cmds_.push_back(std::move(cmd));
  }

  void Flush() {
    bool wake;
    {
      std::lock_guard<std::mutex> lk(cmdMu_);
      // A thread marks itself asleep only with nothing queued: commands queued since, and a
      // sleeping mark, mean it needs the write (and counts as woken from then on).
      wake = sleeping_ && !cmds_.empty();
      if (wake) sleeping_ = false;
    }
    if (wake) Wake();
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t r = write(efd_, &one, sizeof one);
    (void)r;
  }

  void AddListener(Listener* l) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = l;
    epoll_ctl(ep_, EPOLL_CTL_ADD, l->fd, &ev);
  }

  std::mutex& Lock() { return mu_; }

  // The local address of a connection's server socket (under this thread's lock).
  bool LocalOf(double id, sockaddr_storage& me) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = conns_.find(id);
    if (it == conns_.end()) return false;
    Conn* c = it->second;
    if (c->dead || c->phase != kRelay || c->side[1].fd < 0) return false;
    socklen_t len = sizeof me;
    return getsockname(c->side[1].fd, reinterpret_cast<sockaddr*>(&me), &len) == 0;
  }

  // Under the thread's lock: no batch of this thread is using the listener meanwhile.
  void RemoveListener(Listener* l) {
    std::lock_guard<std::mutex> lk(mu_);
    epoll_ctl(ep_, EPOLL_CTL_DEL, l->fd, nullptr);
  }

  // Moves the records published so far into `out`, and the strings they name into
  // `strings` (their indexes shifted accordingly). With `counters` (the caller holds this
  // thread's lock, Lock()), also the counters of every connection that moved bytes.
  void Collect(std::vector<double>& out, std::vector<std::string>& strings, bool counters) {
    {
      std::lock_guard<std::mutex> lk(outMu_);
      Move(outRecords_, outStrings_, out, strings);
    }
    if (!counters) return;
    for (Conn* c : dirty_) {
      Report(out, c, kStats, 0);
      c->dirty = false;
    }
    dirty_.clear();
  }

 private:
  void Run();
  void Execute(std::vector<Command>& cmds, bool& stop);
  void Add(Conn* c);
  void Accept(Listener* l);
  void AcceptSome(Listener* l);
  void Adopt(Conn* c);
  void Connect(Conn* c, double attempt, const sockaddr_storage& dest, socklen_t destLen,
               const sockaddr_storage* local, socklen_t localLen, std::string& header);
  void Connected(Conn* c);
  void ServerFailed(Conn* c, int err);
  void Fail(Conn* c, int sideIndex, int err);
  void Pump(Conn* c);
  void PumpEarly(Conn* c);
  bool PumpDir(Conn* c, int d);
  void Finish(Conn* c, int flags, int side, int err);
  void Event(Conn* c, int kind, double arg) {
    Report(records_, c, kind, arg);
    eventsAdded_ = true;
  }
  void Record(double id, int kind, double a, double b, double c, double d, double e, double f = 0) {
    double r[kFields] = {id, static_cast<double>(kind), a, b, c, d, e, f};
    records_.insert(records_.end(), r, r + kFields);
    eventsAdded_ = true;
    // What TypeScript must decide on soon (a client to schedule, a server that failed,
    // accept errors) wakes the event loop at the end of this batch; the rest may wait a little.
    if ((kind == kAccept && f < 0) || kind == kServerFailed || kind == kAcceptError) urgent_ = true;
  }
  double String(std::string s) {
    strings_.push_back(std::move(s));
    return static_cast<double>(strings_.size() - 1);
  }
  // Appends records (and the strings they name, indexes shifted) from one list to another.
  static void Move(std::vector<double>& from, std::vector<std::string>& fromStrings,
                   std::vector<double>& to, std::vector<std::string>& toStrings) {
    size_t base = toStrings.size();
    size_t at = to.size();
    to.insert(to.end(), from.begin(), from.end());
    if (base > 0) {
      for (size_t i = at; i < to.size(); i += kFields) {
        int kind = static_cast<int>(to[i + 1]);
        if (kind == kAccept) {
          to[i + 4] += base;
          if (to[i + 5] >= 0) to[i + 5] += base;
        }
      }
    }
    from.clear();
    for (auto& s : fromStrings) toStrings.push_back(std::move(s));
    fromStrings.clear();
  }
  // Whether records are waiting for a poll.
  bool Published() {
    std::lock_guard<std::mutex> lk(outMu_);
    return !outRecords_.empty();
  }
  // Hands the records of this batch to the event loop's side: poll() takes them under
  // outMu_ alone, held for a copy, so the event loop never waits for a batch to end (nor a
  // thread for a poll). Called before anything else can see the connections they name.
  void Publish() {
    if (records_.empty()) return;
    std::lock_guard<std::mutex> lk(outMu_);
    Move(records_, strings_, outRecords_, outStrings_);
  }
  void Report(std::vector<double>& out, Conn* c, int kind, double arg) {
    out.push_back(c->id);
    out.push_back(kind);
    out.push_back(arg);
    for (Dir& d : c->dir) out.push_back(static_cast<double>(d.bytes));
    for (Dir& d : c->dir) out.push_back(static_cast<double>(d.reads));
    out.push_back(0);
    for (Dir& d : c->dir) d.bytes = d.reads = 0;
  }
  void MarkDirty(Conn* c) {
    if (c->dirty) return;
    c->dirty = true;
    c->dirtyAt = dirty_.size();
    dirty_.push_back(c);
  }
  void Undirty(Conn* c) {
    if (!c->dirty) return;
    Conn* last = dirty_.back();
    dirty_[c->dirtyAt] = last;
    last->dirtyAt = c->dirtyAt;
    dirty_.pop_back();
    c->dirty = false;
  }
  bool Watch(Conn* c, int index) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &c->side[index];
    return epoll_ctl(ep_, EPOLL_CTL_ADD, c->side[index].fd, &ev) == 0;
  }
  // Closes the server socket of a connection (a failed attempt) and forgets its state.
  void DropServer(Conn* c) {
    Side& s = c->side[1];
    if (s.fd >= 0) {
      epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
      close(s.fd);
      s.fd = -1;
    }
    s.rdhup = false;
    for (Dir& d : c->dir) {
      d.Drop();
      if (d.pipe[0] >= 0) {
        close(d.pipe[0]);
        close(d.pipe[1]);
        d.pipe[0] = d.pipe[1] = -1;
      }
      d.inPipe = 0;
    }
    c->dir[0].writable = true;
    c->dir[0].shut = false;
    Dir& back = c->dir[1];
    back.readable = back.writable = true;
    back.srcEof = back.shut = false;
  }

  Relay* owner_;
  Settings settings_;
  int index_;
  int count_;
  int ep_;
  int efd_;
  int reserve_;  // a spare descriptor, to accept and close a client when out of descriptors
  // Listeners this thread stopped watching when out of descriptors with no spare left (a
  // level-triggered listener would wake it in a loop, each wake-up one more error record),
  // and when to watch them again.
  std::vector<Listener*> paused_;
  std::chrono::steady_clock::time_point resumeAt_;
  static constexpr std::chrono::milliseconds kAcceptPause{100};
  // Another one, given up to open a server socket when out of descriptors: the clients
  // accepted must not take every descriptor and leave none to connect them (taken back when
  // descriptors free up again).
  int reserveConnect_;
  char* scratch_;
  std::thread thread_;
  // Held while a batch of events is handled, and by a full poll() (counters, listings) on
  // the JavaScript thread.
  std::mutex mu_;
  // Only for cmds_, and never held while taking another lock: a thread may post to another
  // in the middle of its batch (an accepted client for that thread) without deadlock.
  std::mutex cmdMu_;
  std::vector<Command> cmds_;
  // In (or about to enter) epoll_wait with no command queued, and not woken since (under
  // cmdMu_).
  bool sleeping_ = false;
  // This batch's records (the thread's alone), then published to outRecords_ (under outMu_).
  std::vector<double> records_;
  std::vector<std::string> strings_;
  std::mutex outMu_;
  std::vector<double> outRecords_;
  std::vector<std::string> outStrings_;
  // Clients accepted for other threads in this batch, handed to them after the accept
  // records were published (a connect TypeScript sends on seeing one must find the client).
  std::vector<std::pair<int, Conn*>> handoff_;
  std::vector<Conn*> dirty_;
  std::unordered_map<double, Conn*> conns_;
  std::vector<Conn*> graveyard_;
  bool eventsAdded_ = false;
  bool urgent_ = false;  // this batch made a record TypeScript must act on soon
  // Records published with no wake-up of the event loop yet: one comes by lazyAt_.
  bool lazy_ = false;
  std::chrono::steady_clock::time_point lazyAt_;
};

class Relay : public Napi::ObjectWrap<Relay> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function fn = DefineClass(env, "Relay",
                                    {
                                        InstanceMethod("add", &Relay::Add),
                                        InstanceMethod("close", &Relay::Close),
                                        InstanceMethod("poll", &Relay::Poll),
                                        InstanceMethod("strings", &Relay::Strings),
                                        InstanceMethod("listen", &Relay::Listen),
                                        InstanceMethod("unlisten", &Relay::Unlisten),
                                        InstanceMethod("connect", &Relay::Connect),
                                        InstanceMethod("failServer", &Relay::FailServer),
                                        InstanceMethod("flush", &Relay::Flush),
                                        InstanceMethod("plan", &Relay::SetPlan),
                                        InstanceMethod("localOf", &Relay::LocalOf),
                                        InstanceMethod("turn", &Relay::Turn),
                                        InstanceMethod("stop", &Relay::Stop),
                                    });
    exports.Set("Relay", fn);
    return exports;
  }

  // new Relay({ threads, splice, noDelay, replayLimit, earlyLimit }, onRecords)
  explicit Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
    Napi::Env env = info.Env();
    Napi::Object o = info[0].As<Napi::Object>();
    int threads = o.Get("threads").As<Napi::Number>().Int32Value();
    Settings s;
    s.splice = o.Get("splice").As<Napi::Boolean>().Value();
    s.acceptLocal = o.Has("acceptLocal") && o.Get("acceptLocal").ToBoolean().Value();
    s.noDelay = o.Get("noDelay").As<Napi::Boolean>().Value();
    s.replayLimit = static_cast<size_t>(o.Get("replayLimit").As<Napi::Number>().Int64Value());
    s.earlyLimit = static_cast<size_t>(o.Get("earlyLimit").As<Napi::Number>().Int64Value());
    if (threads < 1) threads = 1;
    settings_ = s;
    // The threads wake the event loop through a uv_async_t of its own: uv_async_send() is
    // one atomic exchange (and an eventfd write when none is pending), with no lock. (A
    // ThreadSafeFunction queues each call under a mutex the event loop also takes for every
    // call it runs: measured, a third of the event loop's and all the relay threads' futex
    // calls came from that mutex, ~150 per 1,000 new connections.)
    env_ = env;
    onRecords_ = Napi::Persistent(info[1].As<Napi::Function>());
    asyncContext_ = std::make_unique<Napi::AsyncContext>(env, "fulcrum-relay");
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    async_ = new uv_async_t;
    uv_async_init(loop, async_, &Relay::OnAsync);
    async_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(async_));
    // An environment torn down with the relay still running (a worker thread that ends
    // without stop()) must not leave the handle open on its loop, nor threads running.
    napi_add_env_cleanup_hook(env, &Relay::OnEnvCleanup, this);
    for (int i = 0; i < threads; i++) workers_.emplace_back(new Worker(this, s, i, threads));
  }

  ~Relay() override {
    napi_remove_env_cleanup_hook(env_, &Relay::OnEnvCleanup, this);
    Shutdown();
  }

  static void OnEnvCleanup(void* self) { static_cast<Relay*>(self)->Shutdown(); }

  // Called by a worker after it queued records: one wake-up call at a time.
  void Wake() {
    if (wakePending_.exchange(true)) return;
    uv_async_send(async_);
  }

  Worker* At(int i) { return workers_[i].get(); }
  // Spreads accepted clients over the threads, round-robin, whichever thread accepted them.
  uint64_t NextAccept() { return accepted_.fetch_add(1, std::memory_order_relaxed); }

 private:
  Worker* WorkerOf(double id) { return workers_[static_cast<uint64_t>(id) % workers_.size()].get(); }

  // From poll() to flush(), while TypeScript handles a batch of records, the commands it sends
  // are queued and each thread is woken once, at flush(); otherwise at once.
  void Send(double id, Command&& cmd) {
    if (batching_) {
      WorkerOf(id)->Queue(std::move(cmd));
    } else {
      WorkerOf(id)->Post(std::move(cmd));
    }
  }

  // flush(): wakes the threads that commands were queued for since poll().
  Napi::Value Flush(const Napi::CallbackInfo& info) {
    batching_ = false;
    if (!stopped_)
      for (auto& w : workers_) w->Flush();
    return info.Env().Undefined();
  }

  // While connections live, the wake-up handle keeps the event loop alive.
  void Live(int delta) {
    if (!async_) return;
    if (delta > 0 && live_++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(async_));
    if (delta < 0 && --live_ == 0) uv_unref(reinterpret_cast<uv_handle_t*>(async_));
  }

  // On the event loop, after one or more Wake(): calls onRecords as a callback from the
  // loop (napi_make_callback: process.nextTick and promise jobs run after it, as for any I/O
  // callback); what it throws is an uncaught exception, as from a ThreadSafeFunction. While
  // the environment is torn down (a worker thread ending) JavaScript cannot run: the call
  // fails with no exception, and the records stay for nobody.
  static void OnAsync(uv_async_t* handle) {
    Relay* self = static_cast<Relay*>(handle->data);
    if (!self) return;
    napi_env env = self->env_;
    napi_handle_scope scope;
    if (napi_open_handle_scope(env, &scope) != napi_ok) return;
    napi_value fn, recv, result;
    napi_status st = napi_get_reference_value(env, self->onRecords_, &fn);
    if (st == napi_ok) st = napi_get_global(env, &recv);
    if (st == napi_ok) st = napi_make_callback(env, *self->asyncContext_, recv, fn, 0, nullptr, &result);
    bool pending = false;
    if (st != napi_ok && napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
    napi_close_handle_scope(env, scope);
  }

  // add(id, clientFd, serverFd, answered): duplicates both descriptors (Node closes its own).
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) return Napi::Number::New(env, EBADF);
    double id = info[0].As<Napi::Number>().DoubleValue();
    int fds[2] = {info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value()};
    bool answered = info[3].As<Napi::Boolean>().Value();
    int dup[2];
    for (int i = 0; i < 2; i++) {
      dup[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
      if (dup[i] < 0) {
        int err = errno;
        if (i == 1) close(dup[0]);
        return Napi::Number::New(env, err);
      }
    }
    Conn* c = new Conn();
    c->id = id;
    c->answered = answered;
    for (int i = 0; i < 2; i++) c->side[i] = Side{kSide, c, i, dup[i], false};
    c->dir[0].src = c->dir[1].dst = 0;
    c->dir[0].dst = c->dir[1].src = 1;
    Live(1);
    Command cmd;
    cmd.op = Command::kAdd;
    cmd.conn = c;
    WorkerOf(id)->Post(std::move(cmd));
    return Napi::Number::New(env, 0);
  }

  // close(id, mode)
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (stopped_) return info.Env().Undefined();
    Command cmd;
    cmd.op = Command::kClose;
    cmd.id = info[0].As<Napi::Number>().DoubleValue();
    cmd.mode = info[1].As<Napi::Number>().Int32Value();
    Send(cmd.id, std::move(cmd));
    return info.Env().Undefined();
  }

  // connect(id, attempt, address, port, localAddress, header): 0, or EINVAL for an address
  // that does not parse.
  Napi::Value Connect(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) return Napi::Number::New(env, EBADF);
    Command cmd;
    cmd.op = Command::kConnect;
    cmd.id = info[0].As<Napi::Number>().DoubleValue();
    cmd.attempt = info[1].As<Napi::Number>().DoubleValue();
    std::string address = info[2].As<Napi::String>().Utf8Value();
    int port = info[3].As<Napi::Number>().Int32Value();
    if (!ParseAddress(address, port, cmd.dest, cmd.destLen)) return Napi::Number::New(env, EINVAL);
    if (info[4].IsString()) {
      std::string local = info[4].As<Napi::String>().Utf8Value();
      if (!ParseAddress(local, 0, cmd.local, cmd.localLen)) return Napi::Number::New(env, EINVAL);
    }
    if (info[5].IsBuffer()) {
      auto b = info[5].As<Napi::Buffer<char>>();
      cmd.header.assign(b.Data(), b.Length());
    }
    Send(cmd.id, std::move(cmd));
    return Napi::Number::New(env, 0);
  }

  // failServer(id, attempt, errno): the attempt failed on TypeScript's decision (connectTimeout).
  Napi::Value FailServer(const Napi::CallbackInfo& info) {
    if (stopped_) return info.Env().Undefined();
    Command cmd;
    cmd.op = Command::kFailServer;
    cmd.id = info[0].As<Napi::Number>().DoubleValue();
    cmd.attempt = info[1].As<Napi::Number>().DoubleValue();
    cmd.mode = info[2].As<Napi::Number>().Int32Value();
    Send(cmd.id, std::move(cmd));
    return info.Env().Undefined();
  }

  // listen(address, port, backlog): the listener's id (>= 1), or -errno.
  Napi::Value Listen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) return Napi::Number::New(env, -EBADF);
    std::string address = info[0].As<Napi::String>().Utf8Value();
    int port = info[1].As<Napi::Number>().Int32Value();
    int backlog = info[2].As<Napi::Number>().Int32Value();
    sockaddr_storage ss;
    socklen_t len;
    if (!ParseAddress(address, port, ss, len)) return Napi::Number::New(env, -EINVAL);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return Napi::Number::New(env, -errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    // Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt, not one per client.
    if (settings_.noDelay) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0 || listen(fd, backlog) < 0) {
      int err = errno;
      close(fd);
      return Napi::Number::New(env, -err);
    }
    auto* l = new Listener();
    l->tag = kListener;
    l->id = static_cast<double>(listeners_.size() + 1);
    l->fd = fd;
    l->wildcard = address == "0.0.0.0" || address == "::";
    l->addr = ss;
    listeners_.emplace_back(l);
    for (auto& w : workers_) w->AddListener(l);
    Live(1);  // as a listening net.Server does, an open listener keeps the process alive
    return Napi::Number::New(env, l->id);
  }

  // plan(listener, gen, kind, entries, fields, addresses, ports, available, restart): the plan
  // the threads execute for that listener's clients from now on (kind 0: none, TypeScript
  // schedules every client); `restart` starts a sequence from its beginning. 0, or EINVAL.
  Napi::Value SetPlan(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    size_t i = static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()) - 1;
    if (i >= listeners_.size()) return Napi::Number::New(env, EINVAL);
    auto p = std::make_shared<Plan>();
    p->gen = info[1].As<Napi::Number>().DoubleValue();
    p->kind = info[2].As<Napi::Number>().Int32Value();
    if (p->kind != kPlanNone) {
      auto entries = info[3].As<Napi::Int32Array>();
      auto fields = info[4].As<Napi::Int32Array>();
      auto addresses = info[5].As<Napi::Array>();
      auto ports = info[6].As<Napi::Int32Array>();
      auto available = info[7].As<Napi::Uint8Array>();
      size_t count = addresses.Length();
      if (ports.ElementLength() != count || available.ElementLength() != count) return Napi::Number::New(env, EINVAL);
      p->servers.resize(count);
      for (size_t k = 0; k < count; k++) {
        Server& sv = p->servers[k];
        std::string text = addresses.Get(k).As<Napi::String>().Utf8Value();
        if (!ParseAddress(text, ports[k], sv.addr, sv.len)) return Napi::Number::New(env, EINVAL);
        sv.available = available[k] != 0;
      }
      p->entries.assign(entries.Data(), entries.Data() + entries.ElementLength());
      for (int e : p->entries)
        if (e < -1 || e >= static_cast<int>(count) || (e < 0 && p->kind != kPlanHash)) return Napi::Number::New(env, EINVAL);
      p->fields.assign(fields.Data(), fields.Data() + fields.ElementLength());
    }
    Listener* l = listeners_[i].get();
    bool restart = info[8].ToBoolean().Value();
    {
      std::lock_guard<std::mutex> lk(l->planMu);
      l->plan = std::move(p);
      if (restart) l->cursor.store(0, std::memory_order_relaxed);
    }
    return Napi::Number::New(env, 0);
  }

  // turn(listener): takes the next turn of the listener's sequence cursor (the one its native
  // picks use), so that a retry TypeScript schedules moves the same cursor on.
  Napi::Value Turn(const Napi::CallbackInfo& info) {
    size_t i = static_cast<size_t>(info[0].As<Napi::Number>().DoubleValue()) - 1;
    if (i >= listeners_.size()) return Napi::Number::New(info.Env(), 0);
    uint64_t t = listeners_[i]->cursor.fetch_add(1, std::memory_order_relaxed);
    return Napi::Number::New(info.Env(), static_cast<double>(t));
  }

  // localOf(id): [address, port] of the balancer's side toward the server of a connection
  // the relay holds, or undefined.
  Napi::Value LocalOf(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) return env.Undefined();
    double id = info[0].As<Napi::Number>().DoubleValue();
    sockaddr_storage me;
    if (!WorkerOf(id)->LocalOf(id, me)) return env.Undefined();
    auto arr = Napi::Array::New(env, 2);
    arr.Set(0u, Napi::String::New(env, AddressOf(me)));
    arr.Set(1u, Napi::Number::New(env, PortOf(me)));
    return arr;
  }

  // unlisten(id): no thread accepts on it any more, and the port is free when this returns.
  Napi::Value Unlisten(const Napi::CallbackInfo& info) {
    double id = info[0].As<Napi::Number>().DoubleValue();
    size_t i = static_cast<size_t>(id) - 1;
    if (i < listeners_.size() && !listeners_[i]->closed) {
      Listener* l = listeners_[i].get();
      l->closed = true;
      for (auto& w : workers_) w->RemoveListener(l);
      close(l->fd);
      Live(-1);
    }
    return info.Env().Undefined();
  }

  // poll(counters): every record published so far, as a Float64Array of kFields per
  // record; with `counters`, also the bytes and reads every connection moved since it last
  // reported them (that waits for each thread's current batch to end).
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bool counters = info.Length() > 0 && info[0].ToBoolean().Value();
    wakePending_.store(false);
    batching_ = !stopped_;
    out_.clear();
    strings_.clear();
    if (counters) {
      // Every thread's lock at once: no batch is half-way, so every counter is current.
      std::vector<std::unique_lock<std::mutex>> locks;
      for (auto& w : workers_) locks.emplace_back(w->Lock());
      for (auto& w : workers_) w->Collect(out_, strings_, true);
    } else {
      // A connection's records come after its accept record whichever threads wrote them:
      // a thread publishes an accept record before the client reaches its owning thread.
      for (auto& w : workers_) w->Collect(out_, strings_, false);
    }
    for (size_t i = 0; i < out_.size(); i += kFields) {
      int kind = static_cast<int>(out_[i + 1]);
      if (kind == kAccept) Live(1);
      if (kind == kClosed) Live(-1);
    }
    auto arr = Napi::Float64Array::New(env, out_.size());
    if (!out_.empty()) std::memcpy(arr.Data(), out_.data(), out_.size() * sizeof(double));
    return arr;
  }

  // strings(): the strings the last poll's records name.
  Napi::Value Strings(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto arr = Napi::Array::New(env, strings_.size());
    // Clients often come from a few addresses: a string equal to the previous one is the
    // same JavaScript string (one allocation, and one string kept by the lingering entries).
    // (Held as a Napi::Value: Set() given the Napi::String itself stored a new JavaScript
    // string for each element.)
    Napi::Value last;
    for (size_t i = 0; i < strings_.size(); i++) {
      if (i == 0 || strings_[i] != strings_[i - 1]) last = Napi::String::New(env, strings_[i]);
      arr.Set(i, last);
    }
    return arr;
  }

  // stop(): ends every thread; connections still relayed are closed with a reset.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    Shutdown();
    return info.Env().Undefined();
  }

  void Shutdown() {
    if (stopped_) return;
    stopped_ = true;
    for (auto& l : listeners_) {
      if (l->closed) continue;
      l->closed = true;
      close(l->fd);
    }
    for (auto& w : workers_) w->RequestStop();
    for (auto& w : workers_) w->Join();
    workers_.clear();
    // No thread is left to call Wake(): the handle is closed. Its memory is not freed: a
    // close callback would be code of this addon, which a worker thread's environment
    // unloads before its loop runs the last close callbacks (measured: a crash). What is
    // left is one uv_async_t (~130 bytes) per relay stopped, one relay per dataplane.
    if (async_) {
      async_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(async_), nullptr);
      async_ = nullptr;
    }
  }

  napi_env env_ = nullptr;
  Napi::FunctionReference onRecords_;
  std::unique_ptr<Napi::AsyncContext> asyncContext_;
  uv_async_t* async_ = nullptr;
  Settings settings_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<double> out_;
  std::vector<std::string> strings_;
  std::atomic<bool> wakePending_{false};
  std::atomic<uint64_t> accepted_{0};
  int64_t live_ = 0;
  bool stopped_ = false;
  bool batching_ = false;  // between poll() and flush()
};

void Worker::Run() {
  epoll_event evs[256];
  std::vector<Command> cmds;
  bool stop = false;
  while (!stop) {
    int timeout = -1;
    if (!paused_.empty())
      timeout = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(resumeAt_ - std::chrono::steady_clock::now())
                 .count()));
    if (lazy_) {
      // Records are waiting for a wake-up of the event loop: at the latest kLazyWakeMs after
      // the first of them.
      int left = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(lazyAt_ - std::chrono::steady_clock::now())
                 .count()));
      if (timeout < 0 || left < timeout) timeout = left;
    }
    {
      // Commands queued while this thread was busy came with no wake-up: it does not sleep
      // while any wait.
      std::lock_guard<std::mutex> ck(cmdMu_);
      if (cmds_.empty())
        sleeping_ = true;
      else
        timeout = 0;
    }
    int n = epoll_wait(ep_, evs, 256, timeout);
    if (n < 0 && errno != EINTR) break;  // what is still queued, Join() closes
    if (n < 0) n = 0;
    {
      std::lock_guard<std::mutex> ck(cmdMu_);
      sleeping_ = false;
      cmds.swap(cmds_);
    }
    if (lazy_ && (n == 0 || std::chrono::steady_clock::now() >= lazyAt_)) {
      lazy_ = false;
      // A poll meanwhile (another thread's wake-up) may have taken them already.
      if (Published()) owner_->Wake();
    }
    if (!paused_.empty() && std::chrono::steady_clock::now() >= resumeAt_) {
      std::lock_guard<std::mutex> lk(mu_);
      if (reserve_ < 0) reserve_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
      for (Listener* l : paused_)
        if (!l->closed) AddListener(l);
      paused_.clear();
    }
    bool notify;
    {
      std::lock_guard<std::mutex> lk(mu_);
      eventsAdded_ = false;
      urgent_ = false;
      if (!cmds.empty()) {
        Execute(cmds, stop);
        cmds.clear();
      }
      for (int i = 0; i < n; i++) {
        void* ptr = evs[i].data.ptr;
        if (ptr == nullptr) {
          // A wake-up: the commands it announced were taken above.
          uint64_t v;
          ssize_t r = read(efd_, &v, sizeof v);
          (void)r;
          continue;
        }
        if (*static_cast<int*>(ptr) == kListener) {
          Accept(static_cast<Listener*>(ptr));
          continue;
        }
        Side* s = static_cast<Side*>(ptr);
        Conn* c = s->conn;
        if (c->dead || s->fd < 0) continue;
        uint32_t e = evs[i].events;
        if (s->index == 1 && c->phase == kConnecting) {
          // The connect finished, one way or the other: writable without an error is success
          // (no SO_ERROR to read then).
          if (e & (EPOLLERR | EPOLLHUP)) {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
              ServerFailed(c, err);
              continue;
            }
          }
          if (!(e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) continue;
          Connected(c);
          if (e & EPOLLRDHUP) s->rdhup = true;
          Pump(c);
          if (c->ackHeld && !c->dead) {
            // The handshake's ACK went out with the bytes just sent: from now on ACK as the
            // kernel would have. Left in delayed-ACK mode, the socket would hold the ACK of
            // the server's first answer, and a server writing that answer in two pieces
            // under Nagle would wait for it (40 ms).
            c->ackHeld = false;
            int one = 1;
            setsockopt(s->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
          }
          continue;
        }
        if (e & EPOLLERR) {
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            Fail(c, s->index, err);
            continue;
          }
        }
        if (e & EPOLLRDHUP) s->rdhup = true;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) c->dir[s->index].readable = true;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) c->dir[1 - s->index].writable = true;
        Pump(c);
      }
      for (Conn* c : graveyard_) delete c;
      graveyard_.clear();
      Publish();
      notify = eventsAdded_;
    }
    if (urgent_) {
      lazy_ = false;
      owner_->Wake();
    } else if (notify && !lazy_) {
      lazy_ = true;
      lazyAt_ = std::chrono::steady_clock::now() + std::chrono::milliseconds(kLazyWakeMs);
    }
  }
  // Stopping: whatever is still relayed ends with a reset (the dataplane is going away).
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [id, c] : conns_) {
    linger l{1, 0};
    for (Side& s : c->side) {
      if (s.fd < 0) continue;
      setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close(s.fd);
    }
    for (Dir& d : c->dir) {
      d.Drop();
      if (d.pipe[0] >= 0) close(d.pipe[0]), close(d.pipe[1]);
    }
    delete c;
  }
  conns_.clear();
  dirty_.clear();
}

void Worker::Execute(std::vector<Command>& cmds, bool& stop) {
  for (Command& cmd : cmds) {
    if (cmd.op == Command::kStop) {
      stop = true;
      continue;
    }
    if (cmd.op == Command::kAdd) {
      Add(cmd.conn);
      continue;
    }
    if (cmd.op == Command::kAdopt) {
      Adopt(cmd.conn);
      continue;
    }
    auto it = conns_.find(cmd.id);
    if (it == conns_.end()) continue;  // ended meanwhile; its record is on its way
    Conn* c = it->second;
    switch (cmd.op) {
      case Command::kClose:
        if (cmd.mode == kFin && c->phase == kRelay) {
          c->closing = true;
          Pump(c);
        } else {
          Finish(c, cmd.mode == kReset ? kWasReset : kWasAborted, 0, 0);
        }
        break;
      case Command::kConnect:
        if (c->phase == kWaiting) Connect(c, cmd.attempt, cmd.dest, cmd.destLen, &cmd.local, cmd.localLen, cmd.header);
        break;
      case Command::kFailServer:
        if (c->phase == kConnecting && c->attempt == cmd.attempt) ServerFailed(c, cmd.mode);
        break;
      default:
        break;
    }
  }
}

void Worker::Add(Conn* c) {
  conns_[c->id] = c;
  for (int i = 0; i < 2; i++) {
    if (!Watch(c, i)) {
      Finish(c, kWasReset, 0, errno);
      return;
    }
  }
  Pump(c);
}

void Worker::Accept(Listener* l) {
  AcceptSome(l);
  if (handoff_.empty()) return;
  // The accept records go first, then the clients accepted for other threads, queued: one
  // wake-up per thread.
  Publish();
  for (auto& [target, c] : handoff_) {
    Command cmd;
    cmd.op = Command::kAdopt;
    cmd.conn = c;
    owner_->At(target)->Queue(std::move(cmd));
  }
  handoff_.clear();
  for (int i = 0; i < count_; i++)
    if (i != index_) owner_->At(i)->Flush();
}

void Worker::AcceptSome(Listener* l) {
  std::shared_ptr<const Plan> plan;
  {
    std::lock_guard<std::mutex> lk(l->planMu);
    plan = l->plan;
  }
  for (int k = 0; k < 64 && !l->closed; k++) {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(l->fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      int err = errno;
      if ((err == EMFILE || err == ENFILE) && reserve_ >= 0) {
        // Out of descriptors: take the spare one to accept that client and close it at once
        // (it sees a closed connection), so the listener does not keep waking us up.
        close(reserve_);
        int drop = accept(l->fd, nullptr, nullptr);
        if (drop >= 0) close(drop);
        reserve_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
      }
      Record(0, kAcceptError, l->id, err, 0, 0, 0);
      if ((err == EMFILE || err == ENFILE) && reserve_ < 0) {
        // No spare to shed the client with: stop watching this listener for a while (the
        // client waits in the backlog) rather than spin on it, as nginx disables accept.
        epoll_ctl(ep_, EPOLL_CTL_DEL, l->fd, nullptr);
        paused_.push_back(l);
        resumeAt_ = std::chrono::steady_clock::now() + kAcceptPause;
      }
      if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) return;
      continue;
    }
    // TCP_NODELAY comes from the listener (Linux copies it to the accepted socket).
    Conn* c = new Conn();
    uint64_t seq = owner_->NextAccept();
    int target = settings_.acceptLocal ? index_ : static_cast<int>(seq % count_);
    c->id = (274877906944.0 + static_cast<double>(seq)) * count_ + target;  // id % threads: its thread
    c->accepted = true;
    c->phase = kWaiting;
    c->keepReplay = settings_.replayLimit > 0;
    c->replayLimit = settings_.replayLimit;
    c->earlyLimit = settings_.earlyLimit;
    c->side[0] = Side{kSide, c, 0, fd, false};
    c->side[1] = Side{kSide, c, 1, -1, false};
    c->dir[0].src = c->dir[1].dst = 0;
    c->dir[0].dst = c->dir[1].src = 1;
    c->listener = l->id;
    c->clientPort = PortOf(ss);
    c->clientAddress = AddressOf(ss);
    sockaddr_storage me;
    if (l->wildcard) {
      socklen_t mlen = sizeof me;
      if (getsockname(fd, reinterpret_cast<sockaddr*>(&me), &mlen) == 0) {
        c->localAddress = AddressOf(me);
        c->hasLocal = true;
      }
    }
    // The plan decides alone: the owning thread connects at once, TypeScript learns it from
    // this record (no round trip through the event loop before the connect).
    double picked = -1;
    if (plan && plan->kind != kPlanNone) {
      int i = Pick(*plan, l, ss, me, c->hasLocal);
      if (i >= 0) {
        c->pickAddr = plan->servers[i].addr;
        c->pickLen = plan->servers[i].len;
        picked = plan->gen * kGenScale + i;
      }
    }
    // Reported here, in accept order (with its sequence number: poll() sorts accepts from
    // all threads by it), before the owning thread can report anything else about it; the
    // owner gets it once the record is published (Accept), before TypeScript can see the
    // record, so that a connect TypeScript sends on seeing it always finds it there.
    double local = c->hasLocal ? String(c->localAddress) : -1;
    Record(c->id, kAccept, l->id, c->clientPort, String(c->clientAddress), local, static_cast<double>(seq),
           picked);
    if (target == index_) {
      Adopt(c);
    } else {
      handoff_.emplace_back(target, c);
    }
  }
}

// A client accepted for this thread: connected at once to the server the plan picked, or
// read while TypeScript picks its server.
void Worker::Adopt(Conn* c) {
  conns_[c->id] = c;
  if (!Watch(c, 0)) {
    Finish(c, kWasReset, 0, errno);
    return;
  }
  // What the client sent already is read first: the connect below can then leave the
  // handshake's last ACK to the segment that carries those bytes.
  PumpEarly(c);
  if (c->dead || c->pickLen == 0) return;
  std::string none;
  Connect(c, 1, c->pickAddr, c->pickLen, nullptr, 0, none);
}

void Worker::Connect(Conn* c, double attempt, const sockaddr_storage& dest, socklen_t destLen,
                     const sockaddr_storage* local, socklen_t localLen, std::string& header) {
  c->attempt = attempt;
  c->phase = kConnecting;
  c->header = std::move(header);
  if (reserveConnect_ < 0) reserveConnect_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int fd = socket(dest.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE) && reserveConnect_ >= 0) {
    close(reserveConnect_);
    reserveConnect_ = -1;
    fd = socket(dest.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  int err = 0;
  if (fd < 0) {
    err = errno;
  } else {
    c->side[1].fd = fd;
    if (settings_.noDelay) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    // Bytes to send as soon as the connection is up (the PROXY header, what the client sent
    // already): the handshake's last ACK can wait for them and go in their segment — one
    // segment less, and the server accepts and reads in one wake-up. Not without them: for
    // a protocol where the server speaks first, the ACK must not wait.
    c->ackHeld = !c->header.empty() || !c->early.empty();
    if (c->ackHeld) {
      int zero = 0;
      setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof zero);
    }
    if (localLen && bind(fd, reinterpret_cast<const sockaddr*>(local), localLen) < 0) {
      err = errno;
    } else if (connect(fd, reinterpret_cast<const sockaddr*>(&dest), destLen) < 0 &&
               errno != EINPROGRESS) {
      err = errno;
    } else if (!Watch(c, 1)) {
      err = errno;
    }
  }
  if (err != 0) ServerFailed(c, err);
}

void Worker::Connected(Conn* c) {
  c->phase = kRelay;
  // The PROXY header goes first, then what the client sent so far (all of it, on a retry).
  Dir& d = c->dir[0];
  size_t n = c->header.size() + c->early.size();
  if (n > 0) {
    d.buf = static_cast<char*>(std::malloc(n));
    std::memcpy(d.buf, c->header.data(), c->header.size());
    std::memcpy(d.buf + c->header.size(), c->early.data(), c->early.size());
    d.off = 0;
    d.len = n;
  }
  c->header.clear();
  // Past the replay buffer's size the bytes are given to this server and not kept.
  if (!c->keepReplay || c->early.size() > c->replayLimit) {
    c->keepReplay = false;
    c->early.clear();
    c->early.shrink_to_fit();
  }
  // The local side toward the server is read when a listing asks (localOf), not here.
  Record(c->id, kConnected, c->attempt, 0, 0, 0, 0);
}

// A server that failed before its first byte: its socket goes, the client stays, and
// TypeScript decides (another server, with the client's bytes replayed, or a reset).
void Worker::ServerFailed(Conn* c, int err) {
  DropServer(c);
  c->phase = kWaiting;
  bool replayable = c->keepReplay || c->clientTotal == 0;
  Record(c->id, kServerFailed, c->attempt, err, replayable ? 1 : 0, 0, 0);
}

void Worker::Fail(Conn* c, int sideIndex, int err) {
  if (sideIndex == 1 && c->accepted && !c->answered) {
    ServerFailed(c, err);
  } else {
    Finish(c, kWasReset, sideIndex + 1, err);
  }
}

// Reads the client while no server takes its bytes (native accept): they are kept in `early`.
void Worker::PumpEarly(Conn* c) {
  Dir& d = c->dir[0];
  int fd = c->side[0].fd;
  while (!d.srcEof && d.readable && c->early.size() < c->earlyLimit) {
    ssize_t n = recv(fd, scratch_, kChunk, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d.readable = false;
        return;
      }
      if (errno == EINTR) continue;
      Finish(c, kWasReset, 1, errno);
      return;
    }
    if (n == 0) {
      d.srcEof = true;
      Event(c, kClientEof, 0);
      return;
    }
    c->early.append(scratch_, static_cast<size_t>(n));
    c->clientTotal += static_cast<uint64_t>(n);
    d.bytes += static_cast<uint64_t>(n);
    d.reads++;
    MarkDirty(c);
    if (static_cast<size_t>(n) < kChunk && !c->side[0].rdhup) d.readable = false;
  }
}

void Worker::Pump(Conn* c) {
  if (c->phase != kRelay) {
    PumpEarly(c);
    return;
  }
  // A write in one direction can make room for the other (or end the connection): go on
  // until neither direction moves.
  bool moved = true;
  while (moved && !c->dead && c->phase == kRelay) {
    moved = PumpDir(c, 0);
    if (c->dead || c->phase != kRelay) return;
    moved = PumpDir(c, 1) || moved;
  }
  if (c->dead || c->phase != kRelay) return;
  Dir& a = c->dir[0];
  Dir& b = c->dir[1];
  if (a.shut && b.shut && a.pending() == 0 && b.pending() == 0) Finish(c, 0, 0, 0);
}

// Moves what it can in direction di; true when it did something (so the caller loops).
bool Worker::PumpDir(Conn* c, int di) {
  Dir& d = c->dir[di];
  int src = c->side[d.src].fd;
  int dst = c->side[d.dst].fd;
  bool moved = false;
  for (;;) {
    // What dst has not taken yet goes first.
    if (d.pending() > 0) {
      if (!d.writable) return moved;
      ssize_t w;
      if (d.len > 0) {
        w = send(dst, d.buf + d.off, d.len - d.off, MSG_NOSIGNAL);
      } else {
        w = splice(d.pipe[0], nullptr, dst, nullptr, d.inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      }
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          d.writable = false;
          return moved;
        }
        if (errno == EINTR) continue;
        Fail(c, d.dst, errno);
        return true;
      }
      moved = true;
      if (d.len > 0) {
        d.off += static_cast<size_t>(w);
        if (d.off == d.len) d.Drop();
      } else {
        d.inPipe -= static_cast<size_t>(w);
      }
      if (d.pending() > 0) {
        d.writable = false;
        return moved;
      }
    }
    if (d.srcEof || c->closing) {
      if (!d.shut) {
        // The other way already ended (read to its FIN, FIN sent, nothing pending): the
        // connection is over, and closing dst (Pump's Finish, just after) sends this FIN
        // without a shutdown(2) of its own. Only for sockets the relay alone holds: a
        // handed-over one may still be open in libuv, and then close() sends nothing. dst was
        // read to its FIN, so no unread byte turns the close into a reset.
        Dir& o = c->dir[1 - di];
        bool last = c->accepted && d.srcEof && !c->closing && o.srcEof && o.shut && o.pending() == 0;
        if (!last) shutdown(dst, SHUT_WR);
        d.shut = true;
        moved = true;
      }
      return moved;
    }
    if (!d.readable) return moved;
    // While a replay may be needed the client's bytes must be seen (and kept): no splice.
    bool viaPipe = settings_.splice && d.bulk && !(di == 0 && c->keepReplay);
    if (viaPipe && d.pipe[0] < 0 && pipe2(d.pipe, O_NONBLOCK | O_CLOEXEC) < 0) viaPipe = false;
    ssize_t n;
    if (viaPipe) {
      n = splice(src, nullptr, d.pipe[1], nullptr, kChunk, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } else {
      n = recv(src, scratch_, kChunk, 0);
    }
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        d.readable = false;
        return moved;
      }
      if (errno == EINTR) continue;
      Fail(c, d.src, errno);
      return true;
    }
    moved = true;
    if (n == 0) {
      d.srcEof = true;
      Event(c, d.src == 0 ? kClientEof : kServerEof, 0);
      continue;  // FIN to dst once what is pending is written
    }
    d.bytes += static_cast<uint64_t>(n);
    if (static_cast<size_t>(n) == kChunk) d.bulk = true;
    d.reads++;
    MarkDirty(c);
    if (di == 0) {
      c->clientTotal += static_cast<uint64_t>(n);
      if (c->keepReplay) {
        c->early.append(scratch_, static_cast<size_t>(n));
        if (c->early.size() > c->replayLimit) {
          c->keepReplay = false;
          c->early.clear();
          c->early.shrink_to_fit();
        }
      }
    } else if (!c->answered) {
      c->answered = true;
      c->keepReplay = false;
      c->early.clear();
      c->early.shrink_to_fit();
      Event(c, kAnswered, 0);
    }
    // A short read drained the socket; a new edge comes with new data (or with a FIN, which
    // is why a FIN already seen means reading on until 0). A splice may stop short of what
    // the socket holds when the pipe's slots are used up, so there only EAGAIN says so.
    if (!viaPipe && static_cast<size_t>(n) < kChunk && !c->side[d.src].rdhup) d.readable = false;
    if (viaPipe) {
      d.inPipe += static_cast<size_t>(n);
      continue;  // the top of the loop writes it
    }
    // The source's FIN is already here and this read took everything before it: the FIN
    // follows at once (the next read returns 0), so the data is queued with MSG_MORE and the
    // FIN (shutdown or close) goes out in the same segment, as a server's last answer and its
    // close usually come — one segment and one ACK fewer per connection.
    int flags = MSG_NOSIGNAL;
    if (c->side[d.src].rdhup && static_cast<size_t>(n) < kChunk && !c->closing) flags |= MSG_MORE;
    ssize_t w = d.writable ? send(dst, scratch_, static_cast<size_t>(n), flags) : 0;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        Fail(c, d.dst, errno);
        return true;
      }
      w = 0;
    }
    if (w < n) {
      // Keep the rest and read no more from src until dst took it.
      d.len = static_cast<size_t>(n - w);
      d.off = 0;
      d.buf = static_cast<char*>(std::malloc(d.len));
      std::memcpy(d.buf, scratch_ + w, d.len);
      d.writable = false;
      return moved;
    }
  }
}

// The connection ends: its descriptors closed (with a reset toward the peer that did not
// fail when `flags` says so), and one record tells TypeScript how.
void Worker::Finish(Conn* c, int flags, int side, int err) {
  if (c->dead) return;
  c->dead = true;
  for (Side& s : c->side) {
    if (s.fd < 0) continue;
    // close() takes a socket out of epoll when no other descriptor refers to it: true of
    // every socket the relay accepted or opened itself, so they skip a syscall each. A
    // handed-over socket may still have libuv's descriptor open for a moment: it goes out
    // explicitly (an event on it would name a freed connection).
    if (!c->accepted) epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
    if (flags & kWasReset && s.index + 1 != side) {
      linger l{1, 0};
      setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(s.fd);
  }
  for (Dir& d : c->dir) {
    d.Drop();
    if (d.pipe[0] >= 0) {
      close(d.pipe[0]);
      close(d.pipe[1]);
    }
  }
  Undirty(c);
  Event(c, kClosed, flags | side << 2 | err << 4);
  conns_.erase(c->id);
  graveyard_.push_back(c);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) { return Relay::Init(env, exports); }

}  // namespace

NODE_API_MODULE(fulcrum_relay, Init)
