// The injection harness: the core's workers fed frames from JavaScript (no NIC, no EAL),
// returning what they emit. One worker by default; with several, frames go through the
// same owner rule and redirect rings as on the EAL workers. Used by the packet-by-packet tests.
#pragma once
#include <cstddef>
#include <napi.h>

#include <memory>
#include <unordered_set>
#include <vector>

#include "core/pipeline.h"
#include "core/worker.h"

namespace fulcrum {

class CollectSink;

// A frame in a redirect ring of the harness (the EAL rings carry mbufs).
struct RedirectedFrame {
  uint16_t port;
  std::vector<uint8_t> data;
  int origin = -1;  // a missed segment going round the workers: the worker that received it first
};

class Harness : public Napi::ObjectWrap<Harness> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Harness(const Napi::CallbackInfo& info);
  ~Harness() override;

 private:
  Napi::Value AddPort(const Napi::CallbackInfo& info);
  Napi::Value AddRoute(const Napi::CallbackInfo& info);
  Napi::Value AddNeighbor(const Napi::CallbackInfo& info);
  Napi::Value SetService(const Napi::CallbackInfo& info);
  Napi::Value RemoveService(const Napi::CallbackInfo& info);
  Napi::Value ExpireServer(const Napi::CallbackInfo& info);
  Napi::Value DrainServer(const Napi::CallbackInfo& info);
  Napi::Value Inject(const Napi::CallbackInfo& info);
  Napi::Value Burst(const Napi::CallbackInfo& info);
  Napi::Value Expire(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value ExpireWalking(const Napi::CallbackInfo& info);
  Napi::Value BenchExpireWalk(const Napi::CallbackInfo& info);
  Napi::Value Bench(const Napi::CallbackInfo& info);
  Napi::Value BenchReceived(const Napi::CallbackInfo& info);
  Napi::Value Signals(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value WorkerCounters(const Napi::CallbackInfo& info);
  Napi::Value Connections(const Napi::CallbackInfo& info);
  Napi::Value Services(const Napi::CallbackInfo& info);
  Napi::Value ConnectionEvents(const Napi::CallbackInfo& info);

  void settle();
  void receive(Worker& w, uint16_t port, std::vector<uint8_t>&& frame, uint64_t now, CollectSink& sink,
               RedirectBatch& batch);
  void process(Worker& w, uint16_t port, std::vector<uint8_t>& frame, uint64_t now, CollectSink& sink,
               int origin = -1);
  void drain(uint64_t now, CollectSink& sink);
  void walk(CollectSink& sink);
  std::vector<uint64_t> worker_counters(size_t i);

  std::unique_ptr<WorkerSet> set_;
  std::unordered_set<uint32_t> served_;
};

// Shared by the harness and the EAL binding: JS values → core structures.
bool read_service(const Napi::Object& o, Service& svc);
void read_synproxy_config(const Napi::Value& v, SynproxyConfig& sp);
// The pipeline options both take (NativeHarnessConfig's shared part, native.ts).
void read_pipeline_config(const Napi::Object& o, PipelineConfig& cfg);
bool read_mac(const Napi::Value& v, Mac& mac);
Napi::Object counters_object(Napi::Env env, const uint64_t* counters);
Napi::Array signals_array(Napi::Env env, const std::vector<HealthSignal>& signals);
Napi::Array conn_events_array(Napi::Env env, const std::vector<ConnEvent>& events);
Napi::Array connections_array(Napi::Env env, const std::vector<ConnInfo>& conns);
Napi::Array services_array(Napi::Env env, const std::vector<ServiceStats>& stats);

}  // namespace fulcrum
