// The injection harness: one core Pipeline fed frames from JavaScript (no NIC, no EAL),
// returning what it emits. Used by the packet-by-packet tests.
#pragma once
#include <cstddef>
#include <napi.h>

#include <memory>
#include <unordered_map>

#include "core/pipeline.h"

namespace fulcrum {

class Harness : public Napi::ObjectWrap<Harness> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Harness(const Napi::CallbackInfo& info);

 private:
  Napi::Value AddPort(const Napi::CallbackInfo& info);
  Napi::Value AddRoute(const Napi::CallbackInfo& info);
  Napi::Value AddNeighbor(const Napi::CallbackInfo& info);
  Napi::Value SetService(const Napi::CallbackInfo& info);
  Napi::Value RemoveService(const Napi::CallbackInfo& info);
  Napi::Value ExpireServer(const Napi::CallbackInfo& info);
  Napi::Value Inject(const Napi::CallbackInfo& info);
  Napi::Value Expire(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Bench(const Napi::CallbackInfo& info);
  Napi::Value Signals(const Napi::CallbackInfo& info);
  Napi::Value Counters(const Napi::CallbackInfo& info);
  Napi::Value Connections(const Napi::CallbackInfo& info);
  Napi::Value Services(const Napi::CallbackInfo& info);

  std::unique_ptr<Pipeline> pipeline_;
  std::unordered_map<uint32_t, std::shared_ptr<const Service>> services_;
};

// Shared by the harness and the EAL binding: JS values → core structures.
bool read_service(const Napi::Object& o, Service& svc);
bool read_mac(const Napi::Value& v, Mac& mac);
Napi::Object counters_object(Napi::Env env, const uint64_t* counters);
Napi::Array signals_array(Napi::Env env, const std::vector<HealthSignal>& signals);
Napi::Array connections_array(Napi::Env env, ConnTable& table);
Napi::Array services_array(Napi::Env env, const std::vector<ServiceStats>& stats);

}  // namespace fulcrum
