// The socket dataplane's native relay: moves bytes between the two sockets of an established
// connection on threads of its own (one epoll loop per thread), so that relaying costs no
// JavaScript, no libuv and no Node stream per chunk, and uses every core.
//
// TypeScript keeps everything else (accepting, scheduling, connecting, retries, the PROXY
// header, persistence, timeouts, drain decisions): once a connection is established it
// hands the two descriptors over with add(); the relay reports back, in batches, what
// TypeScript needs to keep its table right (bytes and reads per direction, a FIN from either
// side, the server's first byte, the end of the connection and why), and TypeScript asks it
// to end a connection (drain: FIN both ways; expire/stop: reset; timeout: close).
//
// Per direction the bytes go either through one per-thread buffer (read, then write at once;
// only what the destination did not take is kept, and the source is not read again until it
// was written: back-pressure) or through a pipe with splice(2), which never copies them into
// user space. Sockets are registered edge-triggered once and never modified.
#include <napi.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr int kFields = 7;  // id, kind, arg, inBytes, outBytes, inReads, outReads

// What a record reports (the kind field).
enum Kind { kStats = 0, kClientEof = 1, kServerEof = 2, kAnswered = 3, kClosed = 4 };
// How TypeScript asks for a connection to end.
enum CloseMode { kFin = 0, kReset = 1, kAbort = 2 };
// Closed records: arg = flags | side << 2 | errno << 4.
enum ClosedFlag { kWasReset = 1, kWasAborted = 2 };

struct Conn;

// The epoll cookie of one socket of a connection.
struct Side {
  Conn* conn;
  int index;  // 0 client, 1 server
  int fd;
  bool rdhup;  // the peer's FIN was seen: read until 0, not just until a short read
};

// Bytes flowing from socket `src` to socket `dst`.
struct Dir {
  int src;
  int dst;
  // buffered mode: what dst has not taken yet
  char* buf = nullptr;
  size_t off = 0;
  size_t len = 0;
  // splice mode
  int pipe[2] = {-1, -1};
  size_t inPipe = 0;
  bool readable = true;  // src may have data (edge-triggered: not read to EAGAIN yet)
  bool writable = true;  // dst may take data
  bool srcEof = false;   // read returned 0
  bool shut = false;     // shutdown(dst, SHUT_WR) done
  uint64_t bytes = 0;    // since the last report
  uint64_t reads = 0;

  size_t pending() const { return len + inPipe; }
};

struct Conn {
  double id;
  Side side[2];
  Dir dir[2];  // 0: client -> server, 1: server -> client
  bool answered;
  bool closing = false;  // drain: no more reads, FIN both ways after what is queued
  bool dead = false;
  bool dirty = false;
  size_t dirtyAt = 0;
};

struct Command {
  enum Op { kAdd, kClose, kStop } op;
  Conn* conn;  // kAdd
  double id;   // kClose
  int mode;
};

class Relay;

class Worker {
 public:
  Worker(Relay* owner, bool splice) : owner_(owner), splice_(splice) {
    ep_ = epoll_create1(EPOLL_CLOEXEC);
    efd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;
    epoll_ctl(ep_, EPOLL_CTL_ADD, efd_, &ev);
    scratch_ = static_cast<char*>(std::malloc(kChunk));
    thread_ = std::thread([this] { Run(); });
  }

  ~Worker() {
    Post({Command::kStop, nullptr, 0, 0});
    thread_.join();
    close(ep_);
    close(efd_);
    std::free(scratch_);
  }

  void Post(const Command& cmd) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      cmds_.push_back(cmd);
    }
    uint64_t one = 1;
    ssize_t r = write(efd_, &one, sizeof one);
    (void)r;
  }

  // Moves the records (and the counters of every connection that moved bytes) into `out`.
  void Collect(std::vector<double>& out) {
    std::lock_guard<std::mutex> lk(mu_);
    out.insert(out.end(), records_.begin(), records_.end());
    records_.clear();
    for (Conn* c : dirty_) {
      Report(out, c, kStats, 0);
      c->dirty = false;
    }
    dirty_.clear();
  }

  bool HasRecords() {
    std::lock_guard<std::mutex> lk(mu_);
    return !records_.empty();
  }

 private:
  void Run();
  void Execute(std::vector<Command>& cmds, bool& stop);
  void Add(Conn* c);
  void Pump(Conn* c);
  bool PumpDir(Conn* c, int d);
  void Finish(Conn* c, int flags, int side, int err);
  void Event(Conn* c, int kind, double arg);
  void Report(std::vector<double>& out, Conn* c, int kind, double arg) {
    out.push_back(c->id);
    out.push_back(kind);
    out.push_back(arg);
    for (Dir& d : c->dir) out.push_back(static_cast<double>(d.bytes));
    for (Dir& d : c->dir) out.push_back(static_cast<double>(d.reads));
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

  Relay* owner_;
  bool splice_;
  int ep_;
  int efd_;
  char* scratch_;
  std::thread thread_;
  // Held while a batch of events is handled, and by Collect/Post on the JavaScript thread.
  std::mutex mu_;
  std::vector<Command> cmds_;
  std::vector<double> records_;
  std::vector<Conn*> dirty_;
  std::unordered_map<double, Conn*> conns_;
  std::vector<Conn*> graveyard_;
  bool eventsAdded_ = false;
};

class Relay : public Napi::ObjectWrap<Relay> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function fn = DefineClass(env, "Relay",
                                    {
                                        InstanceMethod("add", &Relay::Add),
                                        InstanceMethod("close", &Relay::Close),
                                        InstanceMethod("poll", &Relay::Poll),
                                        InstanceMethod("stop", &Relay::Stop),
                                    });
    exports.Set("Relay", fn);
    return exports;
  }

  // new Relay(threads, splice, onRecords)
  explicit Relay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Relay>(info) {
    Napi::Env env = info.Env();
    int threads = info[0].As<Napi::Number>().Int32Value();
    bool splice = info[1].As<Napi::Boolean>().Value();
    if (threads < 1) threads = 1;
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[2].As<Napi::Function>(), "fulcrum-relay", 0, 1);
    tsfn_.Unref(env);
    for (int i = 0; i < threads; i++) workers_.emplace_back(new Worker(this, splice));
  }

  ~Relay() override { Shutdown(); }

  // Called by a worker after it queued records: one wake-up call at a time.
  void Wake() {
    if (wakePending_.exchange(true)) return;
    tsfn_.NonBlockingCall();
  }

 private:
  // add(id, clientFd, serverFd, answered): duplicates both descriptors (Node closes its own).
  Napi::Value Add(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (stopped_) return Napi::Boolean::New(env, false);
    double id = info[0].As<Napi::Number>().DoubleValue();
    int fds[2] = {info[1].As<Napi::Number>().Int32Value(), info[2].As<Napi::Number>().Int32Value()};
    bool answered = info[3].As<Napi::Boolean>().Value();
    int dup[2];
    for (int i = 0; i < 2; i++) {
      dup[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
      if (dup[i] < 0) {
        if (i == 1) close(dup[0]);
        return Napi::Number::New(env, errno);
      }
    }
    Conn* c = new Conn();
    c->id = id;
    c->answered = answered;
    for (int i = 0; i < 2; i++) c->side[i] = Side{c, i, dup[i], false};
    c->dir[0].src = 0;
    c->dir[0].dst = 1;
    c->dir[1].src = 1;
    c->dir[1].dst = 0;
    if (live_++ == 0) tsfn_.Ref(env);
    workers_[static_cast<uint64_t>(id) % workers_.size()]->Post({Command::kAdd, c, id, 0});
    return Napi::Number::New(env, 0);
  }

  // close(id, mode)
  Napi::Value Close(const Napi::CallbackInfo& info) {
    double id = info[0].As<Napi::Number>().DoubleValue();
    int mode = info[1].As<Napi::Number>().Int32Value();
    if (!stopped_) workers_[static_cast<uint64_t>(id) % workers_.size()]->Post({Command::kClose, nullptr, id, mode});
    return info.Env().Undefined();
  }

  // poll(): every record queued so far, as a Float64Array of kFields per record.
  Napi::Value Poll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    wakePending_.store(false);
    out_.clear();
    for (auto& w : workers_) w->Collect(out_);
    for (size_t i = 0; i < out_.size(); i += kFields)
      if (out_[i + 1] == kClosed && --live_ == 0) tsfn_.Unref(env);
    auto arr = Napi::Float64Array::New(env, out_.size());
    if (!out_.empty()) std::memcpy(arr.Data(), out_.data(), out_.size() * sizeof(double));
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
    workers_.clear();
    tsfn_.Release();
  }

  Napi::ThreadSafeFunction tsfn_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<double> out_;
  std::atomic<bool> wakePending_{false};
  int64_t live_ = 0;
  bool stopped_ = false;
};

void Worker::Run() {
  epoll_event evs[256];
  std::vector<Command> cmds;
  bool stop = false;
  while (!stop) {
    int n = epoll_wait(ep_, evs, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    bool notify;
    {
      std::lock_guard<std::mutex> lk(mu_);
      eventsAdded_ = false;
      for (int i = 0; i < n; i++) {
        Side* s = static_cast<Side*>(evs[i].data.ptr);
        if (s == nullptr) {
          uint64_t v;
          ssize_t r = read(efd_, &v, sizeof v);
          (void)r;
          cmds.swap(cmds_);
          Execute(cmds, stop);
          cmds.clear();
          continue;
        }
        Conn* c = s->conn;
        if (c->dead) continue;
        uint32_t e = evs[i].events;
        if (e & EPOLLERR) {
          int err = 0;
          socklen_t len = sizeof err;
          getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            Finish(c, kWasReset, s->index + 1, err);
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
      notify = eventsAdded_;
    }
    if (notify) owner_->Wake();
  }
  // Stopping: whatever is still relayed ends with a reset (the dataplane is going away).
  std::lock_guard<std::mutex> lk(mu_);
  for (auto& [id, c] : conns_) {
    linger l{1, 0};
    for (Side& s : c->side) {
      setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      close(s.fd);
    }
    for (Dir& d : c->dir) {
      std::free(d.buf);
      if (d.pipe[0] >= 0) close(d.pipe[0]), close(d.pipe[1]);
    }
    delete c;
  }
  conns_.clear();
  dirty_.clear();
}

void Worker::Execute(std::vector<Command>& cmds, bool& stop) {
  for (Command& cmd : cmds) {
    switch (cmd.op) {
      case Command::kStop:
        stop = true;
        break;
      case Command::kAdd:
        Add(cmd.conn);
        break;
      case Command::kClose: {
        auto it = conns_.find(cmd.id);
        if (it == conns_.end()) break;  // ended meanwhile; its record is on its way
        Conn* c = it->second;
        if (cmd.mode == kFin) {
          c->closing = true;
          Pump(c);
        } else {
          Finish(c, cmd.mode == kReset ? kWasReset : kWasAborted, 0, 0);
        }
        break;
      }
    }
  }
}

void Worker::Add(Conn* c) {
  conns_[c->id] = c;
  if (splice_) {
    for (Dir& d : c->dir) {
      if (pipe2(d.pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        Finish(c, kWasReset, 0, errno);
        return;
      }
    }
  }
  for (Side& s : c->side) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.ptr = &s;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, s.fd, &ev) < 0) {
      Finish(c, kWasReset, 0, errno);
      return;
    }
  }
  Pump(c);
}

void Worker::Pump(Conn* c) {
  // A write in one direction can make room for the other (or end the connection): go on
  // until neither direction moves.
  bool moved = true;
  while (moved && !c->dead) {
    moved = PumpDir(c, 0);
    if (c->dead) return;
    moved = PumpDir(c, 1) || moved;
  }
  if (c->dead) return;
  Dir& a = c->dir[0];
  Dir& b = c->dir[1];
  if (a.shut && b.shut && a.pending() == 0 && b.pending() == 0) Finish(c, 0, 0, 0);
}

// Moves what it can in direction d; true when it did something (so the caller loops).
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
      if (splice_) {
        w = splice(d.pipe[0], nullptr, dst, nullptr, d.inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      } else {
        w = send(dst, d.buf + d.off, d.len - d.off, MSG_NOSIGNAL);
      }
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          d.writable = false;
          return moved;
        }
        if (errno == EINTR) continue;
        Finish(c, kWasReset, d.dst + 1, errno);
        return true;
      }
      moved = true;
      if (splice_) {
        d.inPipe -= static_cast<size_t>(w);
      } else {
        d.off += static_cast<size_t>(w);
        if (d.off == d.len) {
          std::free(d.buf);
          d.buf = nullptr;
          d.off = d.len = 0;
        }
      }
      if (d.pending() > 0) {
        d.writable = false;
        return moved;
      }
    }
    if (d.srcEof || c->closing) {
      if (!d.shut) {
        shutdown(dst, SHUT_WR);
        d.shut = true;
        moved = true;
      }
      return moved;
    }
    if (!d.readable) return moved;
    ssize_t n;
    if (splice_) {
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
      Finish(c, kWasReset, d.src + 1, errno);
      return true;
    }
    moved = true;
    if (n == 0) {
      d.srcEof = true;
      Event(c, d.src == 0 ? kClientEof : kServerEof, 0);
      continue;  // FIN to dst once what is pending is written
    }
    d.bytes += static_cast<uint64_t>(n);
    d.reads++;
    MarkDirty(c);
    if (di == 1 && !c->answered) {
      c->answered = true;
      Event(c, kAnswered, 0);
    }
    // A short read drained the socket; a new edge comes with new data (or with a FIN, which
    // is why a FIN already seen means reading on until 0).
    // (A splice may stop short of what the socket holds when the pipe's slots are used up,
    // so with splice only EAGAIN says the socket is drained.)
    if (!splice_ && static_cast<size_t>(n) < kChunk && !c->side[d.src].rdhup) d.readable = false;
    if (splice_) {
      d.inPipe += static_cast<size_t>(n);
      continue;  // the top of the loop writes it
    }
    ssize_t w = d.writable ? send(dst, scratch_, static_cast<size_t>(n), MSG_NOSIGNAL) : 0;
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        Finish(c, kWasReset, d.dst + 1, errno);
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

// The connection ends: both descriptors closed (with a reset toward the peer that did not
// fail when `flags` says so), and one record tells TypeScript how.
void Worker::Finish(Conn* c, int flags, int side, int err) {
  if (c->dead) return;
  c->dead = true;
  for (Side& s : c->side) {
    epoll_ctl(ep_, EPOLL_CTL_DEL, s.fd, nullptr);
    if (flags & kWasReset && s.index + 1 != side) {
      linger l{1, 0};
      setsockopt(s.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(s.fd);
  }
  for (Dir& d : c->dir) {
    std::free(d.buf);
    d.buf = nullptr;
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

void Worker::Event(Conn* c, int kind, double arg) {
  Report(records_, c, kind, arg);
  eventsAdded_ = true;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) { return Relay::Init(env, exports); }

}  // namespace

NODE_API_MODULE(fulcrum_relay, Init)
