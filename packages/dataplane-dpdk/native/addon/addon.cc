// The addon's export table: everything JavaScript can reach is listed here.
#include <arpa/inet.h>
#include <napi.h>

#include "addon/eal-binding.h"
#include "addon/harness.h"
#include "core/sched.h"

namespace fulcrum {
namespace {

// planHash(fields, sourceAddress, sourcePort, destinationAddress, destinationPort): the
// native hash, exposed so the kernel's test vectors can be checked against it.
Napi::Value PlanHash(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<HashField> fields;
  Napi::Array f = info[0].As<Napi::Array>();
  for (uint32_t i = 0; i < f.Length(); i++)
    fields.push_back(static_cast<HashField>(f.Get(i).As<Napi::Number>().Uint32Value()));
  uint8_t src[16], dst[16];
  uint8_t slen = 0, dlen = 0;
  auto parse = [](const std::string& s, uint8_t* out, uint8_t& len) {
    if (inet_pton(AF_INET, s.c_str(), out) == 1) return len = 4, true;
    if (inet_pton(AF_INET6, s.c_str(), out) == 1) return len = 16, true;
    return false;
  };
  if (!parse(info[1].ToString().Utf8Value(), src, slen) || !parse(info[3].ToString().Utf8Value(), dst, dlen))
    return Napi::Number::New(env, -1);
  HashTuple t{src, slen, static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value()), dst, dlen,
              static_cast<uint16_t>(info[4].As<Napi::Number>().Uint32Value())};
  return Napi::Number::New(env, plan_hash(fields, t));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Harness", Harness::Init(env));
  exports.Set("planHash", Napi::Function::New(env, PlanHash, "planHash"));
  InitEal(env, exports);
  return exports;
}

}  // namespace
}  // namespace fulcrum

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return fulcrum::Init(env, exports); }
NODE_API_MODULE(fulcrum_dpdk, InitModule)
