#pragma once
#include <cstddef>
#include <napi.h>

namespace fulcrum {
// ealStart, ealStop, ealSetService, ealRemoveService, ealCounters.
void InitEal(Napi::Env env, Napi::Object exports);
}  // namespace fulcrum
