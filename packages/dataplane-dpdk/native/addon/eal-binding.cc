// The EAL binding: the runner lives on the heap for the life of the process (a static one
// would be destroyed by exit() while its thread still runs: the DPDK-NOTES exit hang), its
// events reach JavaScript through a ThreadSafeFunction, and a cleanup hook stops it.
#include "addon/eal-binding.h"

#include <algorithm>
#include <memory>
#include <unordered_map>

#include "addon/harness.h"
#include "core/eal.h"

namespace fulcrum {
namespace {

struct EalState {
  EalRunner runner;
  Napi::ThreadSafeFunction events;
  std::unique_ptr<Napi::Promise::Deferred> started;
  bool stopped = false;
  uint16_t workers = 0;
  uint16_t idle_lcores = 0;
  std::string idle_reason;
  std::vector<bool> steering;
  std::vector<std::string> no_steering;
  std::vector<uint16_t> rx_descriptors;
  std::vector<uint16_t> tx_descriptors;
  uint32_t steering_rules = 0;
};
EalState* g_state = nullptr;  // heap, never destroyed: see above

void StopEal() {
  if (!g_state || g_state->stopped) return;
  g_state->stopped = true;
  g_state->runner.stop();
  if (g_state->events) g_state->events.Release();
}

Napi::Value EalStart(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto deferred = Napi::Promise::Deferred::New(env);
  if (g_state) {
    Napi::Error e = Napi::Error::New(env, "EAL was already started in this process");
    e.Set("eal", Napi::Number::New(env, kEalAlreadyStarted));
    deferred.Reject(e.Value());
    return deferred.Promise();
  }
  g_state = new EalState();
  std::vector<std::string> args;
  Napi::Array a = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); i++) args.push_back(a.Get(i).ToString().Utf8Value());
  std::vector<EalPort> ports;
  Napi::Array pa = info[1].As<Napi::Array>();
  for (uint32_t i = 0; i < pa.Length(); i++) {
    Napi::Object po = pa.Get(i).As<Napi::Object>();
    Napi::Array flat = po.Get("addrs").As<Napi::Array>();
    EalPort port{po.Get("device").ToString().Utf8Value(), {}};
    auto descriptors = [&po](const char* k) {
      return po.Get(k).IsNumber() ? static_cast<uint16_t>(po.Get(k).As<Napi::Number>().Uint32Value()) : uint16_t{0};
    };
    port.rx_descriptors = descriptors("rxDescriptors");
    port.tx_descriptors = descriptors("txDescriptors");
    for (uint32_t j = 0; j + 1 < flat.Length(); j += 2)
      port.addrs.push_back({flat.Get(j).As<Napi::Number>().Uint32Value(),
                            static_cast<uint8_t>(flat.Get(j + 1).As<Napi::Number>().Uint32Value())});
    ports.push_back(std::move(port));
  }
  PipelineConfig cfg;
  Napi::Object o = info[2].As<Napi::Object>();
  auto num = [&o](const char* k, uint32_t def) {
    return o.Get(k).IsNumber() ? o.Get(k).As<Napi::Number>().Uint32Value() : def;
  };
  read_pipeline_config(o, cfg);
  EalOptions opts;
  opts.redirect_ring = num("redirectRing", opts.redirect_ring);
  opts.idle_polls = num("idlePolls", opts.idle_polls);
  opts.idle_sleep_us = num("idleSleepUs", opts.idle_sleep_us);
  g_state->events = Napi::ThreadSafeFunction::New(env, info[3].As<Napi::Function>(), "fulcrum-eal", 0, 1);
  g_state->started = std::make_unique<Napi::Promise::Deferred>(deferred);
  env.AddCleanupHook([] { StopEal(); });

  EalHooks hooks;
  hooks.started = [](const EalStartResult& r) {
    auto* copy = new EalStartResult(r);
    g_state->events.BlockingCall(copy, [](Napi::Env env, Napi::Function, EalStartResult* r) {
      std::unique_ptr<EalStartResult> own(r);
      if (!g_state->started) return;
      if (r->code == kEalOk) {
        g_state->workers = r->workers;
        g_state->idle_lcores = r->idle_lcores;
        g_state->idle_reason = r->idle_reason;
        g_state->steering = r->steering;
        g_state->no_steering = r->no_steering;
        g_state->rx_descriptors = r->rx_descriptors;
        g_state->tx_descriptors = r->tx_descriptors;
        Napi::Array macs = Napi::Array::New(env, r->macs.size());
        for (size_t i = 0; i < r->macs.size(); i++)
          macs.Set(static_cast<uint32_t>(i), Napi::Buffer<uint8_t>::Copy(env, r->macs[i].data(), 6));
        g_state->started->Resolve(macs);
      } else {
        Napi::Error e = Napi::Error::New(env, r->message);
        e.Set("eal", Napi::Number::New(env, r->code));
        g_state->started->Reject(e.Value());
      }
      g_state->started.reset();
      // Events alone must not keep the process alive.
      g_state->events.Unref(env);
    });
  };
  hooks.signals = [](std::vector<HealthSignal>&& s) {
    auto* copy = new std::vector<HealthSignal>(std::move(s));
    g_state->events.BlockingCall(copy, [](Napi::Env env, Napi::Function fn, std::vector<HealthSignal>* s) {
      std::unique_ptr<std::vector<HealthSignal>> own(s);
      fn.Call({Napi::String::New(env, "signals"), signals_array(env, *s)});
    });
  };
  hooks.conn_events = [](std::vector<ConnEvent>&& e) {
    auto* copy = new std::vector<ConnEvent>(std::move(e));
    g_state->events.BlockingCall(copy, [](Napi::Env env, Napi::Function fn, std::vector<ConnEvent>* e) {
      std::unique_ptr<std::vector<ConnEvent>> own(e);
      fn.Call({Napi::String::New(env, "connections"), conn_events_array(env, *e)});
    });
  };
  g_state->runner.start(std::move(args), std::move(ports), cfg, opts, std::move(hooks));
  return deferred.Promise();
}

Napi::Value EalStop(const Napi::CallbackInfo& info) {
  StopEal();
  return info.Env().Undefined();
}

// The workers' control side, or null when EAL is not running (status 3 to JavaScript).
WorkerSet* workers() {
  if (!g_state || g_state->stopped || !g_state->runner.running()) return nullptr;
  return g_state->runner.workers();
}

// 0 = posted to every worker, 1 = bad input, 2 = a worker's command ring stayed full, 3 = not running.
Napi::Value EalSetService(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  Service svc;
  if (!read_service(info[0].As<Napi::Object>(), svc)) return Napi::Number::New(info.Env(), 1);
  bool ok = ws->set_service(svc);
  g_state->steering_rules += g_state->runner.steer(svc.laddrs);
  return Napi::Number::New(info.Env(), ok ? 0 : 2);
}

Napi::Value EalRemoveService(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  return Napi::Number::New(info.Env(), ws->remove_service(info[0].As<Napi::Number>().Uint32Value()) ? 0 : 2);
}

Napi::Value EalExpireServer(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), ws->expire_server(id, info[1].ToString().Utf8Value()) ? 0 : 2);
}

// ealDrainServer(id, server, idleCloseMs, deadlineMs): every worker drains its own connections.
Napi::Value EalDrainServer(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  auto ms = [&info](size_t i) { return static_cast<uint64_t>(std::max<int64_t>(0, info[i].As<Napi::Number>().Int64Value())); };
  return Napi::Number::New(info.Env(), ws->drain_server(id, info[1].ToString().Utf8Value(), ms(2), ms(3)) ? 0 : 2);
}

Napi::Value EalAddRoute(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  Route r{info[0].As<Napi::Number>().Uint32Value(), static_cast<uint8_t>(info[1].As<Napi::Number>().Uint32Value()),
          info[2].As<Napi::Number>().Uint32Value(), static_cast<uint16_t>(info[3].As<Napi::Number>().Uint32Value())};
  return Napi::Number::New(info.Env(), ws->add_route(r) ? 0 : 2);
}

Napi::Value EalAddNeighbor(const Napi::CallbackInfo& info) {
  WorkerSet* ws = workers();
  if (!ws) return Napi::Number::New(info.Env(), 3);
  Mac mac;
  if (!read_mac(info[2], mac)) return Napi::Number::New(info.Env(), 1);
  uint16_t port = static_cast<uint16_t>(info[0].As<Napi::Number>().Uint32Value());
  uint32_t ip = info[1].As<Napi::Number>().Uint32Value();
  return Napi::Number::New(info.Env(), ws->add_neighbor(port, ip, mac) ? 0 : 2);
}

// ealConnectionsRequest() → bool: every worker starts copying its table out, a chunk per loop
// iteration; ealConnectionsReady() → bool once they all finished (JavaScript polls it on
// timers, so neither the workers nor the event loop wait); ealConnectionsTake() →
// { complete, connections }.
Napi::Value EalConnectionsRequest(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), workers() != nullptr && g_state->runner.request_connections());
}

Napi::Value EalConnectionsReady(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), workers() == nullptr || g_state->runner.connections_ready());
}

Napi::Value EalConnectionsTake(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool complete = false;
  std::vector<ConnInfo> conns;
  if (workers()) conns = g_state->runner.take_connections(&complete);
  Napi::Object o = Napi::Object::New(env);
  o.Set("complete", Napi::Boolean::New(env, complete));
  o.Set("connections", connections_array(env, conns));
  return o;
}

// ealInfo() → { workers, idleLcores, idleReason, ports: [{ steering, reason }], steeringRules }
Napi::Value EalInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  if (!g_state) return env.Null();
  o.Set("workers", Napi::Number::New(env, g_state->workers));
  o.Set("idleLcores", Napi::Number::New(env, g_state->idle_lcores));
  o.Set("idleReason", g_state->idle_reason);
  Napi::Array ports = Napi::Array::New(env, g_state->steering.size());
  for (size_t i = 0; i < g_state->steering.size(); i++) {
    Napi::Object p = Napi::Object::New(env);
    p.Set("steering", Napi::Boolean::New(env, g_state->steering[i]));
    p.Set("reason", i < g_state->no_steering.size() ? g_state->no_steering[i] : "");
    if (i < g_state->rx_descriptors.size()) p.Set("rxDescriptors", Napi::Number::New(env, g_state->rx_descriptors[i]));
    if (i < g_state->tx_descriptors.size()) p.Set("txDescriptors", Napi::Number::New(env, g_state->tx_descriptors[i]));
    ports.Set(static_cast<uint32_t>(i), p);
  }
  o.Set("ports", ports);
  o.Set("steeringRules", Napi::Number::New(env, g_state->steering_rules));
  return o;
}

Napi::Value EalWorkerCounters(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<std::vector<uint64_t>> per = g_state ? g_state->runner.worker_counters() : std::vector<std::vector<uint64_t>>{};
  Napi::Array a = Napi::Array::New(env, per.size());
  for (size_t i = 0; i < per.size(); i++) {
    std::vector<uint64_t>& c = per[i];
    if (c.size() != kCounterCount + 1) c.assign(kCounterCount + 1, 0);
    Napi::Object o = counters_object(env, c.data());
    o.Set("connections", Napi::Number::New(env, double(c[kCounterCount])));
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value EalCounters(const Napi::CallbackInfo& info) {
  if (!g_state) return info.Env().Null();
  std::vector<uint64_t> c = g_state->runner.counters();
  if (c.size() != kCounterCount + 1) c.assign(kCounterCount + 1, 0);
  Napi::Object o = counters_object(info.Env(), c.data());
  o.Set("connections", Napi::Number::New(info.Env(), double(c[kCounterCount])));
  return o;
}

Napi::Value EalPorts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<PortStats> ps = g_state ? g_state->runner.port_stats() : std::vector<PortStats>{};
  Napi::Array a = Napi::Array::New(env, ps.size());
  for (size_t i = 0; i < ps.size(); i++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("ipackets", Napi::Number::New(env, double(ps[i].ipackets)));
    o.Set("opackets", Napi::Number::New(env, double(ps[i].opackets)));
    o.Set("ibytes", Napi::Number::New(env, double(ps[i].ibytes)));
    o.Set("obytes", Napi::Number::New(env, double(ps[i].obytes)));
    o.Set("imissed", Napi::Number::New(env, double(ps[i].imissed)));
    o.Set("ierrors", Napi::Number::New(env, double(ps[i].ierrors)));
    o.Set("oerrors", Napi::Number::New(env, double(ps[i].oerrors)));
    o.Set("rxNombuf", Napi::Number::New(env, double(ps[i].rx_nombuf)));
    a.Set(static_cast<uint32_t>(i), o);
  }
  return a;
}

Napi::Value EalServices(const Napi::CallbackInfo& info) {
  if (!g_state) return Napi::Array::New(info.Env());
  return services_array(info.Env(), g_state->runner.service_stats());
}

}  // namespace

void InitEal(Napi::Env env, Napi::Object exports) {
  exports.Set("ealStart", Napi::Function::New(env, EalStart, "ealStart"));
  exports.Set("ealStop", Napi::Function::New(env, EalStop, "ealStop"));
  exports.Set("ealSetService", Napi::Function::New(env, EalSetService, "ealSetService"));
  exports.Set("ealRemoveService", Napi::Function::New(env, EalRemoveService, "ealRemoveService"));
  exports.Set("ealExpireServer", Napi::Function::New(env, EalExpireServer, "ealExpireServer"));
  exports.Set("ealDrainServer", Napi::Function::New(env, EalDrainServer, "ealDrainServer"));
  exports.Set("ealAddRoute", Napi::Function::New(env, EalAddRoute, "ealAddRoute"));
  exports.Set("ealAddNeighbor", Napi::Function::New(env, EalAddNeighbor, "ealAddNeighbor"));
  exports.Set("ealPorts", Napi::Function::New(env, EalPorts, "ealPorts"));
  exports.Set("ealServices", Napi::Function::New(env, EalServices, "ealServices"));
  exports.Set("ealCounters", Napi::Function::New(env, EalCounters, "ealCounters"));
  exports.Set("ealWorkerCounters", Napi::Function::New(env, EalWorkerCounters, "ealWorkerCounters"));
  exports.Set("ealInfo", Napi::Function::New(env, EalInfo, "ealInfo"));
  exports.Set("ealConnectionsRequest", Napi::Function::New(env, EalConnectionsRequest, "ealConnectionsRequest"));
  exports.Set("ealConnectionsReady", Napi::Function::New(env, EalConnectionsReady, "ealConnectionsReady"));
  exports.Set("ealConnectionsTake", Napi::Function::New(env, EalConnectionsTake, "ealConnectionsTake"));
}

}  // namespace fulcrum
