#include "addon/harness.h"

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <cstring>
#include <vector>

namespace fulcrum {

namespace {

// An mbuf's data room (RTE_MBUF_DEFAULT_DATAROOM): injected frames get the same room to grow.
constexpr uint32_t kDataRoom = 2048;

uint32_t u32(const Napi::Object& o, const char* k, uint32_t def = 0) {
  Napi::Value v = o.Get(k);
  return v.IsNumber() ? v.As<Napi::Number>().Uint32Value() : def;
}

std::vector<uint32_t> u32_list(const Napi::Value& v) {
  std::vector<uint32_t> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::Number>().Uint32Value());
  return out;
}

std::vector<int32_t> i32_list(const Napi::Value& v) {
  std::vector<int32_t> out;
  if (!v.IsArray()) return out;
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); i++) out.push_back(a.Get(i).As<Napi::Number>().Int32Value());
  return out;
}

std::string ip_text(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." + std::to_string((a >> 8) & 255) +
         "." + std::to_string(a & 255);
}

class DiscardSink : public FrameSink {
 public:
  void emit(uint16_t, const uint8_t*, uint32_t) override {}
};

}  // namespace

// Frames a worker sent, in order, each with the worker that sent it.
class CollectSink : public FrameSink {
 public:
  struct Sent {
    uint16_t port;
    uint16_t worker;
    std::vector<uint8_t> data;
  };
  std::vector<Sent> frames;
  uint16_t worker = 0;
  void emit(uint16_t port, const uint8_t* data, uint32_t len) override {
    frames.push_back(Sent{port, worker, std::vector<uint8_t>(data, data + len)});
  }
};

namespace {

Napi::Array frames_array(Napi::Env env, const std::vector<CollectSink::Sent>& frames) {
  Napi::Array out = Napi::Array::New(env, frames.size());
  for (size_t i = 0; i < frames.size(); i++) {
    Napi::Array t = Napi::Array::New(env, 3);
    t.Set(0u, Napi::Number::New(env, frames[i].port));
    t.Set(1u, Napi::Buffer<uint8_t>::Copy(env, frames[i].data.data(), frames[i].data.size()));
    t.Set(2u, Napi::Number::New(env, frames[i].worker));
    out.Set(static_cast<uint32_t>(i), t);
  }
  return out;
}

}  // namespace

bool read_mac(const Napi::Value& v, Mac& mac) {
  if (!v.IsBuffer() || v.As<Napi::Buffer<uint8_t>>().Length() != 6) return false;
  std::memcpy(mac.data(), v.As<Napi::Buffer<uint8_t>>().Data(), 6);
  return true;
}

// The facade (src/snapshot.ts) has validated every field; this only reads them.
bool read_service(const Napi::Object& o, Service& svc) {
  svc.id = u32(o, "id");
  svc.name = o.Get("name").ToString().Utf8Value();
  svc.proto = static_cast<uint8_t>(u32(o, "proto", 6));
  svc.vip = u32(o, "vip");
  svc.vport = static_cast<uint16_t>(u32(o, "vport"));
  svc.max_conns = u32(o, "maxConns");
  svc.laddrs = u32_list(o.Get("laddrs"));
  svc.synproxy = o.Get("synproxy").ToBoolean();
  Napi::Value dv = o.Get("dests");
  if (!dv.IsArray()) return false;
  Napi::Array dests = dv.As<Napi::Array>();
  for (uint32_t i = 0; i < dests.Length(); i++) {
    Napi::Object d = dests.Get(i).As<Napi::Object>();
    auto dest = std::make_shared<Dest>();
    dest->addr = u32(d, "addr");
    dest->port = static_cast<uint16_t>(u32(d, "port"));
    dest->key = d.Get("key").ToString().Utf8Value();
    dest->draining = d.Get("draining").ToBoolean();
    dest->serving = d.Get("serving").ToBoolean();
    svc.dests.push_back(dest);
  }
  Napi::Value pv = o.Get("plan");
  if (!pv.IsObject()) return false;
  Napi::Object p = pv.As<Napi::Object>();
  svc.plan.kind = static_cast<PlanKind>(u32(p, "kind"));
  svc.plan.sequence = i32_list(p.Get("sequence"));
  for (uint32_t f : u32_list(p.Get("fields"))) svc.plan.fields.push_back(static_cast<HashField>(f));
  svc.plan.table = i32_list(p.Get("table"));
  svc.plan.formula = static_cast<LcFormula>(u32(p, "formula"));
  svc.plan.weights = u32_list(p.Get("weights"));
  Napi::Value iv = o.Get("insert");
  if (iv.IsObject()) {
    Napi::Object in = iv.As<Napi::Object>();
    auto bytes = [&in](const char* k) {
      Napi::Value b = in.Get(k);
      if (!b.IsBuffer()) return std::vector<uint8_t>{};
      auto buf = b.As<Napi::Buffer<uint8_t>>();
      return std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length());
    };
    svc.insert.kind = static_cast<uint8_t>(u32(in, "kind"));
    svc.insert.toa_prune = in.Get("toaPrune").ToBoolean();
    svc.insert.pp_version = static_cast<uint8_t>(u32(in, "ppVersion", 2));
    svc.insert.pp_crc32c = in.Get("ppCrc32c").ToBoolean();
    svc.insert.pp_unique_id = in.Get("ppUniqueId").ToBoolean();
    svc.insert.pp_tlvs_before = bytes("ppTlvsBefore");
    svc.insert.pp_tlvs_after = bytes("ppTlvsAfter");
  }
  return true;
}

// `synproxy` of the pipeline config (src/options.ts synproxyConfig), validated by the facade.
void read_pipeline_config(const Napi::Object& o, PipelineConfig& cfg) {
  cfg.conn_capacity = u32(o, "connCapacity", cfg.conn_capacity);
  cfg.local_port_min = static_cast<uint16_t>(u32(o, "localPortMin", cfg.local_port_min));
  cfg.local_port_max = static_cast<uint16_t>(u32(o, "localPortMax", cfg.local_port_max));
  if (o.Get("mssClamp").IsNumber()) cfg.mss_clamp = o.Get("mssClamp").As<Napi::Number>().Int32Value();
  if (o.Get("tcpWindowCheck").IsBoolean()) cfg.tcp_window_check = o.Get("tcpWindowCheck").As<Napi::Boolean>();
  cfg.tcp_reset_unknown = u32(o, "tcpResetUnknown", cfg.tcp_reset_unknown);
  std::vector<uint32_t> tcp = u32_list(o.Get("tcpTimeoutsMs"));
  for (size_t i = 0; i < tcp.size() && i < kTcpStateCount; i++) cfg.timeouts.tcp_ms[i] = tcp[i];
  std::vector<uint32_t> udp = u32_list(o.Get("udpTimeoutsMs"));
  for (size_t i = 0; i < udp.size() && i < kUdpStateCount; i++) cfg.timeouts.udp_ms[i] = udp[i];
  cfg.conn_events = o.Get("connEvents").ToBoolean();
  cfg.conn_events_max = u32(o, "connEventsMax", cfg.conn_events_max);
  read_synproxy_config(o.Get("synproxy"), cfg.synproxy);
}

void read_synproxy_config(const Napi::Value& v, SynproxyConfig& sp) {
  if (!v.IsObject()) return;
  Napi::Object o = v.As<Napi::Object>();
  sp.mss = static_cast<uint16_t>(u32(o, "mss", sp.mss));
  sp.ttl = static_cast<uint8_t>(u32(o, "ttl", sp.ttl));
  sp.sack = o.Has("sack") ? o.Get("sack").ToBoolean().Value() : sp.sack;
  Napi::Value ws = o.Get("wscale");
  sp.wscale = ws.IsNumber() ? static_cast<int8_t>(ws.As<Napi::Number>().Int32Value()) : int8_t{-1};
  sp.timestamp = o.Has("timestamp") ? o.Get("timestamp").ToBoolean().Value() : sp.timestamp;
  sp.max_ack_saved = u32(o, "maxAckSaved", sp.max_ack_saved);
  sp.rs_syn_max_retry = u32(o, "rsSynMaxRetry", sp.rs_syn_max_retry);
  sp.ack_storm_thresh = u32(o, "ackStormThresh", sp.ack_storm_thresh);
  sp.reuse_states = u32(o, "reuseStates", sp.reuse_states);
  sp.secret_rotate_ms = u32(o, "secretRotateMs", static_cast<uint32_t>(sp.secret_rotate_ms));
  sp.retry_other_server = o.Has("retryOtherServer") ? o.Get("retryOtherServer").ToBoolean().Value()
                                                    : sp.retry_other_server;
  sp.defer_rs_syn = o.Has("deferRsSyn") ? o.Get("deferRsSyn").ToBoolean().Value() : sp.defer_rs_syn;
}

Napi::Object counters_object(Napi::Env env, const uint64_t* counters) {
  Napi::Object o = Napi::Object::New(env);
  for (int i = 0; i < kCounterCount; i++) o.Set(kCounterNames[i], Napi::Number::New(env, double(counters[i])));
  return o;
}

Napi::Array signals_array(Napi::Env env, const std::vector<HealthSignal>& signals) {
  Napi::Array a = Napi::Array::New(env, signals.size());
  for (size_t i = 0; i < signals.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("service", signals[i].service);
    o.Set("server", signals[i].server);
    o.Set("ok", Napi::Boolean::New(env, signals[i].ok));
    o.Set("reason", signals[i].reason);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Array conn_events_array(Napi::Env env, const std::vector<ConnEvent>& events) {
  Napi::Array a = Napi::Array::New(env, events.size());
  for (size_t i = 0; i < events.size(); i++) {
    const ConnEvent& e = events[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("opened", Napi::Boolean::New(env, e.opened));
    o.Set("service", e.service);
    o.Set("server", e.server);
    o.Set("client", ip_text(e.caddr) + ":" + std::to_string(e.cport));
    o.Set("durationMs", Napi::Number::New(env, double(e.duration_ms)));
    if (e.reason) o.Set("reason", e.reason);
    if (e.failed) {
      o.Set("failed", Napi::Boolean::New(env, true));
      o.Set("retried", Napi::Boolean::New(env, e.retried));
    }
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Array connections_array(Napi::Env env, const std::vector<ConnInfo>& conns) {
  Napi::Array a = Napi::Array::New(env, conns.size());
  for (size_t i = 0; i < conns.size(); i++) {
    const ConnInfo& c = conns[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("protocol", c.proto == 6 ? "tcp" : "udp");
    o.Set("service", c.service);
    o.Set("server", c.server);
    o.Set("client", ip_text(c.caddr) + ":" + std::to_string(c.cport));
    o.Set("virtual", ip_text(c.vaddr) + ":" + std::to_string(c.vport));
    o.Set("local", ip_text(c.laddr) + ":" + std::to_string(c.lport));
    o.Set("state", c.proto == 6 ? tcp_state_name(c.state) : udp_state_name(c.state));
    o.Set("expiresInMs", Napi::Number::New(env, double(c.expires_in_ms)));
    o.Set("worker", Napi::Number::New(env, c.worker));
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Array services_array(Napi::Env env, const std::vector<ServiceStats>& stats) {
  Napi::Array a = Napi::Array::New(env, stats.size());
  for (size_t i = 0; i < stats.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", stats[i].name);
    o.Set("liveConns", Napi::Number::New(env, stats[i].live_conns));
    Napi::Array ds = Napi::Array::New(env, stats[i].dests.size());
    for (size_t j = 0; j < stats[i].dests.size(); j++) {
      const Dest& d = stats[i].dests[j];
      Napi::Object x = Napi::Object::New(env);
      x.Set("server", d.key);
      x.Set("activeConns", Napi::Number::New(env, d.active));
      x.Set("inactiveConns", Napi::Number::New(env, d.inactive));
      x.Set("conns", Napi::Number::New(env, double(d.conns)));
      x.Set("inPkts", Napi::Number::New(env, double(d.in_pkts)));
      x.Set("outPkts", Napi::Number::New(env, double(d.out_pkts)));
      x.Set("inBytes", Napi::Number::New(env, double(d.in_bytes)));
      x.Set("outBytes", Napi::Number::New(env, double(d.out_bytes)));
      ds.Set(static_cast<uint32_t>(j), x);
    }
    o.Set("servers", ds);
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Function Harness::Init(Napi::Env env) {
  return DefineClass(env, "Harness",
                     {
                         InstanceMethod<&Harness::AddPort>("addPort"),
                         InstanceMethod<&Harness::AddRoute>("addRoute"),
                         InstanceMethod<&Harness::AddNeighbor>("addNeighbor"),
                         InstanceMethod<&Harness::SetService>("setService"),
                         InstanceMethod<&Harness::RemoveService>("removeService"),
                         InstanceMethod<&Harness::ExpireServer>("expireServer"),
                         InstanceMethod<&Harness::DrainServer>("drainServer"),
                         InstanceMethod<&Harness::Inject>("inject"),
                         InstanceMethod<&Harness::Burst>("burst"),
                         InstanceMethod<&Harness::Expire>("expire"),
                         InstanceMethod<&Harness::Flush>("flush"),
                         InstanceMethod<&Harness::Step>("step"),
                         InstanceMethod<&Harness::ExpireWalking>("expireWalking"),
                         InstanceMethod<&Harness::BenchExpireWalk>("benchExpireWalk"),
                         InstanceMethod<&Harness::Bench>("bench"),
                         InstanceMethod<&Harness::BenchReceived>("benchReceived"),
                         InstanceMethod<&Harness::Signals>("signals"),
                         InstanceMethod<&Harness::Counters>("counters"),
                         InstanceMethod<&Harness::WorkerCounters>("workerCounters"),
                         InstanceMethod<&Harness::Connections>("connections"),
                         InstanceMethod<&Harness::Services>("services"),
                         InstanceMethod<&Harness::ConnectionEvents>("connectionEvents"),
                     });
}

Harness::Harness(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Harness>(info) {
  PipelineConfig cfg;
  uint16_t workers = 1;
  uint32_t ring = 1024;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    read_pipeline_config(o, cfg);
    workers = static_cast<uint16_t>(std::max<uint32_t>(1, u32(o, "workers", 1)));
    ring = std::max<uint32_t>(1, u32(o, "redirectRing", ring));
    cfg.expire_chunk_slots = u32(o, "expireChunkSlots", cfg.expire_chunk_slots);
    cfg.expire_conn_cost = u32(o, "expireConnCost", cfg.expire_conn_cost);
    cfg.expire_reset_cost = u32(o, "expireResetCost", cfg.expire_reset_cost);
  }
  set_ = std::make_unique<WorkerSet>(cfg, workers, ring, 1024);
}

Harness::~Harness() {
  // Frames still in redirect rings are the harness's to free.
  for (size_t i = 0; i < set_->size(); i++) {
    void* items[32];
    unsigned n;
    while ((n = set_->at(i).take_redirected(items, 32)) > 0)
      for (unsigned k = 0; k < n; k++) delete static_cast<RedirectedFrame*>(items[k]);
  }
}

// Control changes go through the command rings, as on the EAL workers; the harness runs
// them at once (the workers' safe point between bursts).
void Harness::settle() {
  for (size_t i = 0; i < set_->size(); i++) set_->at(i).run_commands();
}

Napi::Value Harness::AddPort(const Napi::CallbackInfo& info) {
  Mac mac;
  if (!read_mac(info[1], mac)) return Napi::Number::New(info.Env(), 1);
  std::vector<uint32_t> flat = u32_list(info[2]);
  std::vector<InterfaceAddress> addrs;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) addrs.push_back({flat[i], static_cast<uint8_t>(flat[i + 1])});
  uint16_t id = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
  for (size_t i = 0; i < set_->size(); i++) {
    set_->at(i).pipeline().add_port(id, mac, addrs);
    if (info.Length() > 3 && info[3].IsNumber())
      set_->at(i).pipeline().set_port_mtu(id, static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value()));
  }
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::AddRoute(const Napi::CallbackInfo& info) {
  set_->add_route(Route{info[0].As<Napi::Number>().Uint32Value(),
                        static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value()),
                        info[2].As<Napi::Number>().Uint32Value(),
                        static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value())});
  settle();
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::AddNeighbor(const Napi::CallbackInfo& info) {
  Mac mac;
  if (!read_mac(info[2], mac)) return Napi::Number::New(info.Env(), 1);
  set_->add_neighbor(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()),
                     info[1].As<Napi::Number>().Uint32Value(), mac);
  settle();
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::SetService(const Napi::CallbackInfo& info) {
  Service svc;
  if (!info[0].IsObject() || !read_service(info[0].As<Napi::Object>(), svc)) return Napi::Number::New(info.Env(), 1);
  served_.insert(svc.id);
  set_->set_service(svc);
  settle();
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::RemoveService(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  bool known = served_.erase(id) > 0;
  set_->remove_service(id);
  settle();
  return Napi::Number::New(info.Env(), known ? 0 : 2);
}

// expireServer(id, server): files the expire on every worker; their walks reset the
// connections a chunk per loop iteration (flush(), step(), and every inject or burst).
Napi::Value Harness::ExpireServer(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  set_->expire_server(id, info[1].ToString().Utf8Value());
  settle();
  return Napi::Number::New(info.Env(), 0);
}

// drainServer(id, server, idleCloseMs, deadlineMs): times from the last clock the workers saw.
Napi::Value Harness::DrainServer(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  auto ms = [&info](size_t i) { return static_cast<uint64_t>(std::max<int64_t>(0, info[i].As<Napi::Number>().Int64Value())); };
  set_->drain_server(id, info[1].ToString().Utf8Value(), ms(2), ms(3));
  settle();
  return Napi::Number::New(info.Env(), 0);
}

// A frame received by worker `w`: redirected to its owner (the same rule and rings as the
// EAL workers), or processed here.
void Harness::receive(Worker& w, uint16_t port, std::vector<uint8_t>&& frame, uint64_t now, CollectSink& sink,
                      RedirectBatch& batch) {
  uint16_t owner = w.owner(frame.data(), static_cast<uint32_t>(frame.size()));
  if (owner != w.index()) {
    batch.add(owner, new RedirectedFrame{port, std::move(frame)});
    return;
  }
  process(w, port, frame, now, sink);
}

void Harness::process(Worker& w, uint16_t port, std::vector<uint8_t>& frame, uint64_t now, CollectSink& sink,
                      int origin) {
  sink.worker = w.index();
  // As in an mbuf: the frame at the start of a 2 KiB data room, the rest of it free to grow into.
  uint32_t len = static_cast<uint32_t>(frame.size());
  if (frame.size() < kDataRoom) frame.resize(kDataRoom);
  Verdict v = w.pipeline().process(port, frame.data(), len, static_cast<uint32_t>(frame.size()), now, sink);
  frame.resize(v.len ? v.len : len);
  if (v.action == Action::Miss) {
    // As the EAL loop does: round the workers once, through their redirect rings.
    uint16_t from = origin < 0 ? w.index() : static_cast<uint16_t>(origin);
    const uint16_t reason = v.port;
    int next = w.pass_miss(from, reason, now, len);
    if (next >= 0) {
      void* item = new RedirectedFrame{port, std::move(frame), from};
      if (w.redirect_burst(set_->at(static_cast<size_t>(next)), &item, 1) == 0) delete static_cast<RedirectedFrame*>(item);
      return;
    }
    if (next != Worker::kMissUnknown || reason != kCtr_drop_no_conn) return;
    frame.resize(kDataRoom);
    v = w.pipeline().reset_unknown(frame.data(), now, sink);  // no worker holds it
    frame.resize(v.len ? v.len : len);
  }
  if (v.action == Action::Transmit) sink.frames.push_back(CollectSink::Sent{v.port, w.index(), std::move(frame)});
  set_->share_learned(w);
}

// Each worker's next loop iteration: commands, then what others redirected to it; again
// while any worker passed a missed segment on.
void Harness::drain(uint64_t now, CollectSink& sink) {
  for (bool busy = true; busy;) {
    busy = false;
    for (size_t i = 0; i < set_->size(); i++) {
      Worker& w = set_->at(i);
      w.run_commands();
      void* items[32];
      unsigned n;
      while ((n = w.take_redirected(items, 32)) > 0)
        for (unsigned k = 0; k < n; k++) {
          std::unique_ptr<RedirectedFrame> f(static_cast<RedirectedFrame*>(items[k]));
          process(w, f->port, f->data, now, sink, f->origin);
          busy = true;
        }
    }
  }
  settle();  // neighbours learned while draining
  walk(sink);
}

// The end of each worker's loop iteration: a chunk of an expire walk under way.
void Harness::walk(CollectSink& sink) {
  for (size_t i = 0; i < set_->size(); i++) {
    sink.worker = static_cast<uint16_t>(i);
    set_->at(i).pipeline().expire_walk(sink);
  }
}

// inject(port, frame, nowMs, worker) → [[port, frame, worker], …]: frames the workers
// originated, then the input frame itself when it is transmitted (rewritten in place, as on
// an mbuf), whichever worker handled it.
Napi::Value Harness::Inject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint16_t in_port = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  uint32_t worker = info.Length() > 3 && info[3].IsNumber() ? info[3].As<Napi::Number>().Uint32Value() : 0;
  if (worker >= set_->size()) {
    Napi::RangeError::New(env, "no such worker").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  CollectSink sink;
  RedirectBatch batch(set_->size());
  receive(set_->at(worker), in_port, std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()), now, sink, batch);
  batch.flush(set_->at(worker), *set_, [](void* f) { delete static_cast<RedirectedFrame*>(f); });
  drain(now, sink);
  return frames_array(env, sink.frames);
}

// burst(worker, [[port, frame], …], nowMs): one RX burst on `worker` (redirects pile up in
// the owners' rings), then every worker's next iteration drains its ring.
Napi::Value Harness::Burst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t worker = info[0].As<Napi::Number>().Uint32Value();
  Napi::Array list = info[1].As<Napi::Array>();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  if (worker >= set_->size()) {
    Napi::RangeError::New(env, "no such worker").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  CollectSink sink;
  RedirectBatch batch(set_->size());
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Array pair = list.Get(i).As<Napi::Array>();
    auto buf = pair.Get(1u).As<Napi::Buffer<uint8_t>>();
    receive(set_->at(worker), static_cast<uint16_t>(pair.Get(0u).As<Napi::Number>().Uint32Value()),
            std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()), now, sink, batch);
  }
  batch.flush(set_->at(worker), *set_, [](void* f) { delete static_cast<RedirectedFrame*>(f); });
  drain(now, sink);
  return frames_array(env, sink.frames);
}

// flush() → [[port, frame, worker], …]: what control changes queued (gratuitous ARP).
// Each worker's next loop iteration after a control change (nothing received): what the
// change queued, then a chunk of an expire walk under way.
Napi::Value Harness::Flush(const Napi::CallbackInfo& info) {
  CollectSink sink;
  for (size_t i = 0; i < set_->size(); i++) {
    sink.worker = static_cast<uint16_t>(i);
    set_->at(i).pipeline().flush(sink);
  }
  walk(sink);
  return frames_array(info.Env(), sink.frames);
}

// step() → [[port, frame, worker], …]: each worker's next loop iteration with nothing
// received: a chunk of an expire walk under way.
Napi::Value Harness::Step(const Napi::CallbackInfo& info) {
  CollectSink sink;
  walk(sink);
  return frames_array(info.Env(), sink.frames);
}

// expireWalking() → [bool per worker]: an expire walk is under way on that worker.
Napi::Value Harness::ExpireWalking(const Napi::CallbackInfo& info) {
  Napi::Array out = Napi::Array::New(info.Env(), set_->size());
  for (size_t i = 0; i < set_->size(); i++)
    out.Set(static_cast<uint32_t>(i), Napi::Boolean::New(info.Env(), set_->at(i).pipeline().expire_walking()));
  return out;
}

// benchExpireWalk(id, server, worker) → [nanoseconds of each chunk]: expires `server` of
// service `id` (every worker takes the command) and runs `worker`'s walk to its end, one
// chunk per call as its loop would, the RSTs built and routed but discarded. Each chunk is
// time the worker forwards nothing.
Napi::Value Harness::BenchExpireWalk(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  std::string server = info[1].ToString().Utf8Value();
  uint32_t worker = info[2].As<Napi::Number>().Uint32Value();
  if (worker >= set_->size()) {
    Napi::RangeError::New(env, "no such worker").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  set_->expire_server(id, server);
  settle();
  Pipeline& p = set_->at(worker).pipeline();
  DiscardSink sink;
  std::vector<double> ns;
  for (bool more = p.expire_walking(); more;) {
    auto t0 = std::chrono::steady_clock::now();
    more = p.expire_walk(sink);
    ns.push_back(static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count()));
  }
  Napi::Array out = Napi::Array::New(env, ns.size());
  for (size_t i = 0; i < ns.size(); i++) out.Set(static_cast<uint32_t>(i), Napi::Number::New(env, ns[i]));
  return out;
}

// The [[port, frame], …] a benchmark entry point is given, copied out of JavaScript.
using BenchFrames = std::vector<std::pair<uint16_t, std::vector<uint8_t>>>;
static BenchFrames bench_frames(const Napi::Array& list) {
  BenchFrames frames;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Array pair = list.Get(i).As<Napi::Array>();
    auto buf = pair.Get(1u).As<Napi::Buffer<uint8_t>>();
    frames.emplace_back(static_cast<uint16_t>(pair.Get(0u).As<Napi::Number>().Uint32Value()),
                        std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()));
  }
  return frames;
}

// bench([[port, frame], …], rounds, nowMs) → nanoseconds spent: each frame copied into a
// scratch buffer (as a NIC would have written it) and processed by worker 0, `rounds`
// times over. The cost of the pipeline itself, with no I/O and no JavaScript per packet.
Napi::Value Harness::Bench(const Napi::CallbackInfo& info) {
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t rounds = info[1].As<Napi::Number>().Uint32Value();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  BenchFrames frames = bench_frames(list);
  std::vector<uint8_t> scratch(kDataRoom);
  DiscardSink sink;
  Pipeline& pipeline = set_->at(0).pipeline();
  auto t0 = std::chrono::steady_clock::now();
  for (uint32_t r = 0; r < rounds; r++)
    for (const auto& [port, f] : frames) {
      std::memcpy(scratch.data(), f.data(), f.size());
      pipeline.process(port, scratch.data(), static_cast<uint32_t>(f.size()), kDataRoom, now, sink);
    }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(info.Env(), static_cast<double>(ns));
}

namespace {

// A frame as a worker received it, where a benchmark keeps it until it is processed.
struct BenchSlot {
  uint16_t port;
  uint32_t len;
  uint8_t data[2048];
};
constexpr unsigned kBenchBurst = 32, kBenchAhead = 4;

// Processes a burst of frames as the EAL loop does: the two passes of Pipeline::prefetch,
// then each frame with its connection prefetched a few frames ahead.
void process_burst(Pipeline& p, BenchSlot* const* slots, unsigned n, uint64_t now, FrameSink& sink) {
  uint64_t hints[kBenchBurst];
  for (unsigned i = 0; i < n; i++) hints[i] = p.prefetch(slots[i]->data, slots[i]->len);
  for (unsigned i = 0; i < n && i < kBenchAhead; i++) p.prefetch_conn(hints[i]);
  for (unsigned i = 0; i < n; i++) {
    if (i + kBenchAhead < n) p.prefetch_conn(hints[i + kBenchAhead]);
    p.process(slots[i]->port, slots[i]->data, slots[i]->len, sizeof slots[i]->data, now, sink, hints[i]);
  }
}

// Takes a burst from `w`'s redirect ring and processes it; how many frames it took.
unsigned drain_redirected(Worker& w, uint64_t now, FrameSink& sink) {
  void* items[kBenchBurst];
  unsigned k = w.take_redirected(items, kBenchBurst);
  process_burst(w.pipeline(), reinterpret_cast<BenchSlot* const*>(items), k, now, sink);
  return k;
}

void pin_to_cpu(pthread_t t, unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(t, sizeof set, &set);
}

}  // namespace

// benchReceived([[port, frame], …], rounds, nowMs, worker, across) → nanoseconds spent: as
// bench(), but every frame is received by `worker` as from its RX queue, in bursts of 32:
// the owner check runs on each, and frames another worker owns go through that worker's
// ring (one enqueue per owner per burst). Without `across`, all on this one thread (the
// software cost of a redirect); with it, the owners drain their rings on a second thread
// on another CPU while this one receives (a pipeline of two cores, with the cache traffic
// between them: the time is that of its slower stage).
Napi::Value Harness::BenchReceived(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t rounds = info[1].As<Napi::Number>().Uint32Value();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  uint32_t worker = info[3].As<Napi::Number>().Uint32Value();
  const bool across = info.Length() > 4 && info[4].ToBoolean().Value();
  if (worker >= set_->size()) {
    Napi::RangeError::New(env, "no such worker").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  BenchFrames frames = bench_frames(list);
  DiscardSink sink;
  Worker& rx = set_->at(worker);
  RedirectBatch batch(set_->size());
  // With `across`, frames handed to another worker stay in a pool until it has processed
  // them: they take its slots in order and the owners process them in order, so a slot is
  // free again once the owners are less than `kPool - kBenchBurst` behind.
  constexpr uint64_t kPool = 1024;
  std::vector<BenchSlot> pool(kPool), local(kBenchBurst);
  uint64_t handed = 0;
  std::atomic<uint64_t> taken{0};
  std::atomic<bool> done{false};
  std::thread owners;
  cpu_set_t saved;  // this (JavaScript's) thread's CPUs, given back when the run ends
  if (across) {
    pthread_getaffinity_np(pthread_self(), sizeof saved, &saved);
    pin_to_cpu(pthread_self(), 0);
    owners = std::thread([&] {
      pin_to_cpu(pthread_self(), 1);
      DiscardSink theirs;
      for (;;) {
        const bool last = done.load(std::memory_order_acquire);
        uint64_t got = 0;
        for (size_t o = 0; o < set_->size(); o++)
          if (o != rx.index()) got += drain_redirected(set_->at(o), now, theirs);
        taken.fetch_add(got, std::memory_order_release);
        if (last && got == 0) return;
      }
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  for (uint32_t r = 0; r < rounds; r++)
    for (size_t at = 0; at < frames.size(); at += kBenchBurst) {
      const unsigned n = static_cast<unsigned>(std::min<size_t>(kBenchBurst, frames.size() - at));
      if (across)
        while (handed - taken.load(std::memory_order_acquire) > kPool - kBenchBurst) std::this_thread::yield();
      // As the EAL loop takes a burst: all frames first (the RX burst; with `across` each
      // written where it stays until processed), the two passes of Pipeline::prefetch, then
      // the owner check and this worker's own frames.
      BenchSlot* slots[kBenchBurst];
      uint16_t owners_of[kBenchBurst];
      uint64_t hints[kBenchBurst];
      for (unsigned i = 0; i < n; i++) {
        const auto& [port, f] = frames[at + i];
        BenchSlot* s = &local[i];
        if (across) {
          owners_of[i] = rx.owner(f.data(), static_cast<uint32_t>(f.size()));
          if (owners_of[i] != rx.index()) s = &pool[handed++ % kPool];
        }
        s->port = port;
        s->len = static_cast<uint32_t>(f.size());
        std::memcpy(s->data, f.data(), f.size());
        slots[i] = s;
      }
      for (unsigned i = 0; i < n; i++) hints[i] = rx.pipeline().prefetch(slots[i]->data, slots[i]->len);
      for (unsigned i = 0; i < n && i < kBenchAhead; i++) rx.pipeline().prefetch_conn(hints[i]);
      for (unsigned i = 0; i < n; i++) {
        if (i + kBenchAhead < n) rx.pipeline().prefetch_conn(hints[i + kBenchAhead]);
        BenchSlot* s = slots[i];
        const uint16_t owner = across ? owners_of[i] : rx.owner(s->data, s->len);
        if (owner != rx.index())
          batch.add(owner, s);
        else
          rx.pipeline().process(s->port, s->data, s->len, sizeof s->data, now, sink, hints[i]);
      }
      batch.flush(rx, *set_, [](void*) {});
      if (!across)
        for (size_t o = 0; o < set_->size(); o++)
          while (drain_redirected(set_->at(o), now, sink) > 0) {
          }
    }
  if (across) {
    done.store(true, std::memory_order_release);
    owners.join();
    pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(env, static_cast<double>(ns));
}

Napi::Value Harness::Expire(const Napi::CallbackInfo& info) {
  uint64_t now = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  CollectSink sink;
  uint32_t n = 0;
  for (size_t i = 0; i < set_->size(); i++) {
    sink.worker = static_cast<uint16_t>(i);
    n += set_->at(i).pipeline().expire(now, sink);
  }
  if (info.Length() > 1 && info[1].IsArray()) {  // expire(nowMs, out): what expiry sent, appended to out
    Napi::Array out = info[1].As<Napi::Array>();
    Napi::Array frames = frames_array(info.Env(), sink.frames);
    for (uint32_t i = 0; i < frames.Length(); i++) out.Set(out.Length(), frames.Get(i));
  }
  return Napi::Number::New(info.Env(), n);
}

Napi::Value Harness::Signals(const Napi::CallbackInfo& info) {
  std::vector<HealthSignal> all;
  for (size_t i = 0; i < set_->size(); i++) {
    std::vector<HealthSignal> s = set_->at(i).pipeline().take_signals();
    all.insert(all.end(), std::make_move_iterator(s.begin()), std::make_move_iterator(s.end()));
  }
  return signals_array(info.Env(), all);
}

std::vector<uint64_t> Harness::worker_counters(size_t i) {
  Pipeline& p = set_->at(i).pipeline();
  std::vector<uint64_t> c(p.counters(), p.counters() + kCounterCount);
  c.push_back(p.conns().size());
  return c;
}

Napi::Value Harness::Counters(const Napi::CallbackInfo& info) {
  std::vector<std::vector<uint64_t>> per;
  for (size_t i = 0; i < set_->size(); i++) per.push_back(worker_counters(i));
  std::vector<uint64_t> c = WorkerSet::sum_counters(per);
  Napi::Object o = counters_object(info.Env(), c.data());
  o.Set("connections", Napi::Number::New(info.Env(), double(c[kCounterCount])));
  return o;
}

Napi::Value Harness::WorkerCounters(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), set_->size());
  for (size_t i = 0; i < set_->size(); i++) {
    std::vector<uint64_t> c = worker_counters(i);
    Napi::Object o = counters_object(info.Env(), c.data());
    o.Set("connections", Napi::Number::New(info.Env(), double(c[kCounterCount])));
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value Harness::Services(const Napi::CallbackInfo& info) {
  std::vector<std::vector<ServiceStats>> per;
  for (size_t i = 0; i < set_->size(); i++) per.push_back(set_->at(i).pipeline().service_stats());
  return services_array(info.Env(), WorkerSet::merge_services(per));
}

Napi::Value Harness::ConnectionEvents(const Napi::CallbackInfo& info) {
  std::vector<ConnEvent> all;
  for (size_t i = 0; i < set_->size(); i++) {
    std::vector<ConnEvent> e = set_->at(i).pipeline().take_conn_events();
    all.insert(all.end(), std::make_move_iterator(e.begin()), std::make_move_iterator(e.end()));
  }
  return conn_events_array(info.Env(), all);
}

// connections(nowMs): the listing the EAL workers give, stepped here synchronously.
Napi::Value Harness::Connections(const Napi::CallbackInfo& info) {
  uint64_t now = info.Length() > 0 && info[0].IsNumber() ? static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()) : 0;
  std::vector<ConnInfo> all;
  for (size_t i = 0; i < set_->size(); i++) {
    Worker& w = set_->at(i);
    w.request_listing();
    while (!w.listing_finished()) w.list_step(now);
    bool complete = false;
    std::vector<ConnInfo> l = w.wait_listing(0, &complete);
    all.insert(all.end(), std::make_move_iterator(l.begin()), std::make_move_iterator(l.end()));
  }
  return connections_array(info.Env(), all);
}

}  // namespace fulcrum
