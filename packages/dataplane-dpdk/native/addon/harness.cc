#include "addon/harness.h"

#include <algorithm>
#include <chrono>
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

class CollectSink : public FrameSink {
 public:
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> frames;
  void emit(uint16_t port, const uint8_t* data, uint32_t len) override {
    frames.emplace_back(port, std::vector<uint8_t>(data, data + len));
  }
};

Napi::Array frames_array(Napi::Env env, const std::vector<std::pair<uint16_t, std::vector<uint8_t>>>& frames) {
  Napi::Array out = Napi::Array::New(env, frames.size());
  for (size_t i = 0; i < frames.size(); i++) {
    Napi::Array pair = Napi::Array::New(env, 2);
    pair.Set(0u, Napi::Number::New(env, frames[i].first));
    pair.Set(1u, Napi::Buffer<uint8_t>::Copy(env, frames[i].second.data(), frames[i].second.size()));
    out.Set(static_cast<uint32_t>(i), pair);
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

Napi::Array connections_array(Napi::Env env, ConnTable& table) {
  Napi::Array a = Napi::Array::New(env);
  uint32_t n = 0;
  table.for_each([&](Conn& c) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("protocol", c.proto == 6 ? "tcp" : "udp");
    o.Set("service", c.svc->name);
    o.Set("server", c.dest->key);
    o.Set("client", ip_text(c.caddr) + ":" + std::to_string(c.cport));
    o.Set("virtual", ip_text(c.vaddr) + ":" + std::to_string(c.vport));
    o.Set("local", ip_text(c.laddr) + ":" + std::to_string(c.lport));
    o.Set("state", c.proto == 6 ? tcp_state_name(c.state) : udp_state_name(c.state));
    o.Set("expiresMs", Napi::Number::New(env, double(c.expires_ms)));
    a.Set(n++, o);
  });
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
                         InstanceMethod<&Harness::Inject>("inject"),
                         InstanceMethod<&Harness::Expire>("expire"),
                         InstanceMethod<&Harness::Flush>("flush"),
                         InstanceMethod<&Harness::Bench>("bench"),
                         InstanceMethod<&Harness::Signals>("signals"),
                         InstanceMethod<&Harness::Counters>("counters"),
                         InstanceMethod<&Harness::Connections>("connections"),
                         InstanceMethod<&Harness::Services>("services"),
                     });
}

Harness::Harness(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Harness>(info) {
  PipelineConfig cfg;
  if (info.Length() > 0 && info[0].IsObject()) {
    Napi::Object o = info[0].As<Napi::Object>();
    cfg.conn_capacity = u32(o, "connCapacity", cfg.conn_capacity);
    cfg.local_port_min = static_cast<uint16_t>(u32(o, "localPortMin", cfg.local_port_min));
    cfg.local_port_max = static_cast<uint16_t>(u32(o, "localPortMax", cfg.local_port_max));
    if (o.Get("mssClamp").IsNumber()) cfg.mss_clamp = o.Get("mssClamp").As<Napi::Number>().Int32Value();
    std::vector<uint32_t> tcp = u32_list(o.Get("tcpTimeoutsMs"));
    for (size_t i = 0; i < tcp.size() && i < kTcpStateCount; i++) cfg.timeouts.tcp_ms[i] = tcp[i];
    std::vector<uint32_t> udp = u32_list(o.Get("udpTimeoutsMs"));
    for (size_t i = 0; i < udp.size() && i < kUdpStateCount; i++) cfg.timeouts.udp_ms[i] = udp[i];
  }
  pipeline_ = std::make_unique<Pipeline>(cfg);
}

Napi::Value Harness::AddPort(const Napi::CallbackInfo& info) {
  Mac mac;
  if (!read_mac(info[1], mac)) return Napi::Number::New(info.Env(), 1);
  std::vector<uint32_t> flat = u32_list(info[2]);
  std::vector<InterfaceAddress> addrs;
  for (size_t i = 0; i + 1 < flat.size(); i += 2) addrs.push_back({flat[i], static_cast<uint8_t>(flat[i + 1])});
  uint16_t id = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
  pipeline_->add_port(id, mac, addrs);
  if (info.Length() > 3 && info[3].IsNumber())
    pipeline_->set_port_mtu(id, static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value()));
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::AddRoute(const Napi::CallbackInfo& info) {
  pipeline_->add_route(Route{info[0].As<Napi::Number>().Uint32Value(),
                             static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value()),
                             info[2].As<Napi::Number>().Uint32Value(),
                             static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value())});
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::AddNeighbor(const Napi::CallbackInfo& info) {
  Mac mac;
  if (!read_mac(info[2], mac)) return Napi::Number::New(info.Env(), 1);
  pipeline_->add_neighbor(static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value()),
                          info[1].As<Napi::Number>().Uint32Value(), mac);
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::SetService(const Napi::CallbackInfo& info) {
  auto svc = std::make_shared<Service>();
  if (!info[0].IsObject() || !read_service(info[0].As<Napi::Object>(), *svc))
    return Napi::Number::New(info.Env(), 1);
  auto prev = services_.find(svc->id);
  apply_drain(reuse_dests(*svc, prev == services_.end() ? nullptr : prev->second.get()));
  services_[svc->id] = svc;
  pipeline_->set_service(svc);
  return Napi::Number::New(info.Env(), 0);
}

Napi::Value Harness::RemoveService(const Napi::CallbackInfo& info) {
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  services_.erase(id);
  return Napi::Number::New(info.Env(), pipeline_->remove_service(id) ? 0 : 2);
}

Napi::Value Harness::ExpireServer(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), pipeline_->expire_server(info[0].As<Napi::Number>().Uint32Value(),
                                                                info[1].ToString().Utf8Value()));
}

// inject(port, frame, nowMs) → [[port, frame], …]: frames the pipeline originated, then the
// input frame itself when it is transmitted (rewritten in place, as on an mbuf).
Napi::Value Harness::Inject(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint16_t in_port = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
  auto buf = info[1].As<Napi::Buffer<uint8_t>>();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  // As in an mbuf: the frame at the start of a 2 KiB data room, the rest of it free to grow into.
  uint32_t len = static_cast<uint32_t>(buf.Length());
  std::vector<uint8_t> frame(std::max<size_t>(len, kDataRoom));
  std::memcpy(frame.data(), buf.Data(), len);
  CollectSink sink;
  Verdict v = pipeline_->process(in_port, frame.data(), len, static_cast<uint32_t>(frame.size()), now, sink);
  frame.resize(v.len ? v.len : len);
  if (v.action == Action::Transmit) sink.frames.emplace_back(v.port, std::move(frame));
  return frames_array(env, sink.frames);
}

// flush() → [[port, frame], …]: what control changes queued (gratuitous ARP).
Napi::Value Harness::Flush(const Napi::CallbackInfo& info) {
  CollectSink sink;
  pipeline_->flush(sink);
  return frames_array(info.Env(), sink.frames);
}

// bench([[port, frame], …], rounds, nowMs) → nanoseconds spent: each frame copied into a
// scratch buffer (as a NIC would have written it) and processed, `rounds` times over. The
// cost of the pipeline itself, with no I/O and no JavaScript per packet.
Napi::Value Harness::Bench(const Napi::CallbackInfo& info) {
  Napi::Array list = info[0].As<Napi::Array>();
  uint32_t rounds = info[1].As<Napi::Number>().Uint32Value();
  uint64_t now = static_cast<uint64_t>(info[2].As<Napi::Number>().Int64Value());
  std::vector<std::pair<uint16_t, std::vector<uint8_t>>> frames;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Array pair = list.Get(i).As<Napi::Array>();
    auto buf = pair.Get(1u).As<Napi::Buffer<uint8_t>>();
    frames.emplace_back(static_cast<uint16_t>(pair.Get(0u).As<Napi::Number>().Uint32Value()),
                        std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()));
  }
  std::vector<uint8_t> scratch(kDataRoom);
  DiscardSink sink;
  auto t0 = std::chrono::steady_clock::now();
  for (uint32_t r = 0; r < rounds; r++)
    for (const auto& [port, f] : frames) {
      std::memcpy(scratch.data(), f.data(), f.size());
      pipeline_->process(port, scratch.data(), static_cast<uint32_t>(f.size()), kDataRoom, now, sink);
    }
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(info.Env(), static_cast<double>(ns));
}

Napi::Value Harness::Expire(const Napi::CallbackInfo& info) {
  uint64_t now = static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  return Napi::Number::New(info.Env(), pipeline_->expire(now));
}

Napi::Value Harness::Signals(const Napi::CallbackInfo& info) {
  return signals_array(info.Env(), pipeline_->take_signals());
}

Napi::Value Harness::Counters(const Napi::CallbackInfo& info) {
  Napi::Object o = counters_object(info.Env(), pipeline_->counters());
  o.Set("connections", Napi::Number::New(info.Env(), pipeline_->conns().size()));
  return o;
}

Napi::Value Harness::Services(const Napi::CallbackInfo& info) {
  return services_array(info.Env(), pipeline_->service_stats());
}

Napi::Value Harness::Connections(const Napi::CallbackInfo& info) {
  return connections_array(info.Env(), pipeline_->conns());
}

}  // namespace fulcrum
